// Baseline: memcpy of TOTAL bytes in CHUNK-sized copies between pre-faulted buffers (best of REPS).
//   memcpy_bench TOTAL CHUNK REPS -> prints GB/s
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + ts.tv_nsec / 1e9;
}

int main(int argc, char** argv) {
  size_t total = strtoull(argv[1], 0, 10), chunk = strtoull(argv[2], 0, 10);
  int reps = atoi(argv[3]);
  char* src = mmap(0, total, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
  char* dst = mmap(0, total, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
  memset(src, 1, total);
  memset(dst, 2, total);
  double best = 0;
  for (int r = 0; r < reps; r++) {
    double t0 = now();
    for (size_t off = 0; off + chunk <= total; off += chunk) memcpy(dst + off, src + off, chunk);
    double gbps = total / (now() - t0) / 1e9;
    if (gbps > best) best = gbps;
  }
  printf("%.4f %d\n", best, dst[total / 2]);
  return 0;
}
