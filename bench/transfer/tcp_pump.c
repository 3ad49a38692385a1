// Baseline: raw TCP between two processes. The parent receives, a forked child sends TOTAL
// bytes in CHUNK-sized send() calls over loopback; the receiver times first byte to last.
//   tcp_pump TOTAL CHUNK  -> prints GB/s
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + ts.tv_nsec / 1e9;
}

int main(int argc, char** argv) {
  size_t total = strtoull(argv[1], 0, 10), chunk = strtoull(argv[2], 0, 10);
  size_t io = chunk > (4u << 20) ? (4u << 20) : chunk;
  int ls = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in a = {0};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  bind(ls, (struct sockaddr*)&a, sizeof a);
  listen(ls, 1);
  socklen_t al = sizeof a;
  getsockname(ls, (struct sockaddr*)&a, &al);
  pid_t pid = fork();
  if (pid == 0) {
    int s = socket(AF_INET, SOCK_STREAM, 0);
    int one = 1;
    setsockopt(s, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    connect(s, (struct sockaddr*)&a, sizeof a);
    char* buf = malloc(io);
    memset(buf, 7, io);
    for (size_t sent = 0; sent < total;) {
      size_t n = total - sent < io ? total - sent : io;
      ssize_t k = send(s, buf, n, 0);
      if (k <= 0) return 1;
      sent += k;
    }
    close(s);
    return 0;
  }
  int c = accept(ls, 0, 0);
  char* buf = malloc(4u << 20);
  memset(buf, 0, 4u << 20);
  size_t got = 0;
  double t0 = 0;
  while (got < total) {
    ssize_t k = recv(c, buf, 4u << 20, 0);
    if (k <= 0) break;
    if (got == 0) t0 = now();
    got += k;
  }
  double sec = now() - t0;
  waitpid(pid, 0, 0);
  printf("%.4f\n", got / sec / 1e9);
  return got == total ? 0 : 1;
}
