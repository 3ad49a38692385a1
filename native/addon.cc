// Module entry: a flat table of functions over the engine. Arguments are validated by the
// TypeScript layer first; the checks here only keep a wrong call from touching bad memory.
// Completions come back through one thread-safe function per environment, referenced only
// while batches are in flight so an idle engine never keeps the process alive.
#include <napi.h>

#include <functional>
#include <map>
#include <memory>

#include "auth.h"
#include "crc32c.h"
#include "engine.h"
#include "grant.h"
#include "local_memory.h"
#include "segment.h"

namespace mooncake {
constexpr uint32_t kNativeAbiVersion = 5;

namespace {

using Job = std::function<void(Napi::Env)>;

void CallJs(Napi::Env env, Napi::Function, std::nullptr_t*, Job* job) {
  if (env != nullptr) (*job)(env);
  delete job;
}

using Tsfn = Napi::TypedThreadSafeFunction<std::nullptr_t, Job, CallJs>;

struct SegmentHandle {
  uint32_t engine = 0;
  std::shared_ptr<Segment> seg;
};

struct Instance {
  Tsfn tsfn;
  int pending = 0;
  std::map<uint32_t, std::unique_ptr<Engine>> engines;
  uint32_t nextEngine = 1;
  std::map<uint32_t, SegmentHandle> segments;
  uint32_t nextSegment = 1;
  // Registrations belong to one engine, like the original's registerLocalMemory.
  std::map<uint32_t, LocalMemory> memory;
};

Instance* Inst(Napi::Env env) { return env.GetInstanceData<Instance>(); }

Napi::Value Throw(Napi::Env env, int32_t status, const std::string& message) {
  Napi::Error e = Napi::Error::New(env, message);
  e.Set("status", Napi::Number::New(env, status));
  e.ThrowAsJavaScriptException();
  return env.Undefined();
}

Napi::Value ThrowResult(Napi::Env env, const Result& r) { return Throw(env, r.status, r.message); }

bool GetBytes(Napi::Value v, uint8_t** data, size_t* len) {
  if (!v.IsTypedArray()) return false;
  Napi::TypedArray ta = v.As<Napi::TypedArray>();
  if (ta.TypedArrayType() != napi_uint8_array) return false;
  Napi::Uint8Array u = v.As<Napi::Uint8Array>();
  *data = u.Data();
  *len = u.ByteLength();
  return true;
}

int64_t Int(Napi::Value v, int64_t fallback = 0) {
  return v.IsNumber() ? v.As<Napi::Number>().Int64Value() : fallback;
}

Engine* EngineOf(const Napi::CallbackInfo& info) {
  auto& engines = Inst(info.Env())->engines;
  auto it = engines.find(uint32_t(Int(info[0])));
  return it == engines.end() ? nullptr : it->second.get();
}

// Runs `job` on the JS thread later; safe from any thread.
void Post(Tsfn tsfn, Job job) {
  Job* heap = new Job(std::move(job));
  if (tsfn.NonBlockingCall(heap) != napi_ok) delete heap;
}

void BeginPending(Napi::Env env) {
  Instance* in = Inst(env);
  if (in->pending++ == 0) in->tsfn.Ref(env);
}

void EndPending(Napi::Env env) {
  Instance* in = Inst(env);
  if (--in->pending == 0) in->tsfn.Unref(env);
}

// ---- checksums and grants (pure functions) ----

Napi::Value Crc32cFn(const Napi::CallbackInfo& info) {
  uint8_t* data;
  size_t len;
  if (!GetBytes(info[0], &data, &len)) return Throw(info.Env(), kInvalidParams, "crc32c: expected a Uint8Array");
  uint64_t off = uint64_t(Int(info[1])), n = uint64_t(Int(info[2]));
  if (off > len || n > len - off) return Throw(info.Env(), kBufferOverflow, "crc32c: range outside the buffer");
  uint32_t seed = uint32_t(Int(info[3]));
  return Napi::Number::New(info.Env(), Crc32c(seed, data + off, size_t(n)));
}

// HMAC-SHA256(key, msg[0:msgLength]) truncated to outLength bytes, written at out[outOffset]: the
// master mints a grant per replica it hands out, and createHmac costs ~2.5 µs a call.
Napi::Value HmacSha256IntoFn(const Napi::CallbackInfo& info) {
  uint8_t *key, *msg, *out;
  size_t keyLen, msgCap, outCap;
  if (!GetBytes(info[0], &key, &keyLen) || !GetBytes(info[1], &msg, &msgCap) || !GetBytes(info[3], &out, &outCap))
    return Throw(info.Env(), kInvalidParams, "hmacSha256Into: expected Uint8Arrays");
  const uint64_t msgLen = uint64_t(Int(info[2])), outAt = uint64_t(Int(info[4])), outLen = uint64_t(Int(info[5]));
  if (keyLen == 0 || msgLen > msgCap || outLen > 32 || outAt > outCap || outLen > outCap - outAt)
    return Throw(info.Env(), kBufferOverflow, "hmacSha256Into: range outside the buffers");
  uint8_t mac[32];
  HmacSha256Cached(key, keyLen, msg, size_t(msgLen), mac);
  memcpy(out + outAt, mac, size_t(outLen));
  return info.Env().Undefined();
}

Napi::Value Crc32cHardwareFn(const Napi::CallbackInfo& info) {
  return Napi::Boolean::New(info.Env(), Crc32cHardware());
}

// Checksums a large region off the JS thread (libuv pool); the region stays alive through
// the shared_ptr or the buffer reference.
class CrcWorker : public Napi::AsyncWorker {
 public:
  CrcWorker(Napi::Env env, std::shared_ptr<Segment> seg, Napi::Value holder, const uint8_t* data, size_t len,
            uint32_t seed)
      : Napi::AsyncWorker(env), deferred_(Napi::Promise::Deferred::New(env)), seg_(std::move(seg)), data_(data),
        len_(len), seed_(seed) {
    if (!holder.IsUndefined()) ref_ = Napi::Persistent(holder);
  }
  Napi::Promise Promise() { return deferred_.Promise(); }
  void Execute() override { crc_ = Crc32c(seed_, data_, len_); }
  void OnOK() override { deferred_.Resolve(Napi::Number::New(Env(), crc_)); }
  void OnError(const Napi::Error& e) override { deferred_.Reject(e.Value()); }

 private:
  Napi::Promise::Deferred deferred_;
  std::shared_ptr<Segment> seg_;
  Napi::Reference<Napi::Value> ref_;
  const uint8_t* data_;
  size_t len_;
  uint32_t seed_;
  uint32_t crc_ = 0;
};

// crc32cAsync(target: Uint8Array | segmentHandle, offset, length, seed) -> Promise<number>
Napi::Value Crc32cAsyncFn(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  uint64_t off = uint64_t(Int(info[1])), n = uint64_t(Int(info[2]));
  uint32_t seed = uint32_t(Int(info[3]));
  CrcWorker* w;
  if (info[0].IsNumber()) {
    auto& segs = Inst(env)->segments;
    auto it = segs.find(uint32_t(Int(info[0])));
    if (it == segs.end()) return Throw(env, kSegmentNotFound, "crc32c: the segment is closed");
    if (!it->second.seg->Contains(off, n)) return Throw(env, kBufferOverflow, "crc32c: range outside the segment");
    w = new CrcWorker(env, it->second.seg, env.Undefined(), it->second.seg->data() + off, size_t(n), seed);
  } else {
    uint8_t* data;
    size_t len;
    if (!GetBytes(info[0], &data, &len)) return Throw(env, kInvalidParams, "crc32c: expected a Uint8Array");
    if (off > len || n > len - off) return Throw(env, kBufferOverflow, "crc32c: range outside the buffer");
    w = new CrcWorker(env, nullptr, info[0], data + off, size_t(n), seed);
  }
  Napi::Promise p = w->Promise();
  w->Queue();
  return p;
}

// grantMac(key, segment, offset, length, opMask, expiryUnixMs) -> Buffer(16): lets tests prove
// that the TypeScript minter and the native verifier agree.
Napi::Value GrantMacFn(const Napi::CallbackInfo& info) {
  uint8_t* key;
  size_t keyLen;
  if (!GetBytes(info[0], &key, &keyLen) || keyLen != kGrantKeySize)
    return Throw(info.Env(), kInvalidParams, "grant key must be 32 bytes");
  Grant g;
  g.offset = uint64_t(Int(info[2]));
  g.length = uint64_t(Int(info[3]));
  g.opMask = uint32_t(Int(info[4]));
  g.expiryUnixMs = uint64_t(Int(info[5]));
  uint8_t mac[kGrantMacSize];
  GrantMac(key, info[1].As<Napi::String>().Utf8Value(), g, mac);
  return Napi::Buffer<uint8_t>::Copy(info.Env(), mac, sizeof mac);
}

Napi::Value SweepFn(const Napi::CallbackInfo& info) {
  std::string why;
  return Napi::Number::New(info.Env(), SweepStaleSegments(&why));
}

// ---- engines ----

Napi::Value EngineCreate(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!info[0].IsObject()) return Throw(env, kInvalidParams, "engineCreate: options object expected");
  Napi::Object o = info[0].As<Napi::Object>();
  EngineOptions eo;
  Napi::Value hosts = o.Get("listenHosts");
  if (hosts.IsArray()) {
    Napi::Array a = hosts.As<Napi::Array>();
    for (uint32_t i = 0; i < a.Length(); i++) eo.server.hosts.push_back(a.Get(i).As<Napi::String>().Utf8Value());
  }
  std::string token = o.Get("token").IsString() ? o.Get("token").As<Napi::String>().Utf8Value() : "";
  eo.server.port = int(Int(o.Get("port"), 0));
  eo.server.token = token;
  eo.server.maxConnections = int(Int(o.Get("maxConnections"), 1024));
  eo.server.idleTimeoutMs = int(Int(o.Get("idleTimeoutMs"), 60000));
  eo.server.threads = int(Int(o.Get("serverThreads"), 4));
  eo.server.ioTimeoutMs = int(Int(o.Get("ioTimeoutMs"), 30000));
  eo.client.token = token;
  eo.client.lanesPerPeer = int(Int(o.Get("lanesPerPeer"), 4));
  eo.client.threads = int(Int(o.Get("clientThreads"), 8));
  eo.client.connectTimeoutMs = int(Int(o.Get("connectTimeoutMs"), 5000));
  eo.client.cooldownMs = int(Int(o.Get("cooldownMs"), 1000));
  eo.client.idleTimeoutMs = int(Int(o.Get("idleTimeoutMs"), 60000)) / 2;
  eo.client.batchScheduling = !o.Get("batchScheduling").IsBoolean() || o.Get("batchScheduling").As<Napi::Boolean>().Value();
  Instance* in = Inst(env);
  uint32_t id = in->nextEngine++;
  in->engines[id] = std::make_unique<Engine>(std::move(eo));
  return Napi::Number::New(env, id);
}

Napi::Value EngineStart(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Engine* e = EngineOf(info);
  if (!e) return Throw(env, kInvalidParams, "no such engine");
  std::vector<std::string> endpoints;
  Result r = e->Start(&endpoints);
  if (!r.ok()) return ThrowResult(env, r);
  Napi::Array out = Napi::Array::New(env, endpoints.size());
  for (uint32_t i = 0; i < endpoints.size(); i++) out.Set(i, endpoints[i]);
  return out;
}

Napi::Value EngineClose(const Napi::CallbackInfo& info) {
  Instance* in = Inst(info.Env());
  uint32_t id = uint32_t(Int(info[0]));
  auto it = in->engines.find(id);
  if (it == in->engines.end()) return info.Env().Undefined();
  it->second->Close();
  for (auto s = in->segments.begin(); s != in->segments.end();)
    s = s->second.engine == id ? in->segments.erase(s) : std::next(s);
  in->engines.erase(it);
  return info.Env().Undefined();
}

// engineRelease(engine): drops the engine's registrations once its batches have completed.
Napi::Value EngineRelease(const Napi::CallbackInfo& info) {
  Inst(info.Env())->memory.erase(uint32_t(Int(info[0])));
  return info.Env().Undefined();
}

Napi::Value EngineCloseListener(const Napi::CallbackInfo& info) {
  Engine* e = EngineOf(info);
  if (!e || !e->server()) return Napi::Boolean::New(info.Env(), false);
  return Napi::Boolean::New(info.Env(), e->server()->CloseListener(info[1].As<Napi::String>().Utf8Value()));
}

Napi::Value EngineStats(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Engine* e = EngineOf(info);
  if (!e) return Throw(env, kInvalidParams, "no such engine");
  Napi::Object out = Napi::Object::New(env);
  if (Client* c = e->client()) {
    ClientStats s = c->Stats();
    Napi::Object o = Napi::Object::New(env);
    o.Set("transferredBytes", double(s.transferredBytes));
    o.Set("memcpyBytes", double(s.memcpyBytes));
    o.Set("retries", double(s.retries));
    o.Set("connectionsOpened", double(s.connectsOpened));
    o.Set("batchesInFlight", double(s.batchesInFlight));
    out.Set("client", o);
  }
  if (Server* sv = e->server()) {
    ServerStats s = sv->Stats();
    Napi::Object o = Napi::Object::New(env);
    Napi::Array ls = Napi::Array::New(env, s.listeners.size());
    for (uint32_t i = 0; i < s.listeners.size(); i++) {
      Napi::Object l = Napi::Object::New(env);
      l.Set("endpoint", s.listeners[i].endpoint);
      l.Set("open", s.listeners[i].open);
      l.Set("accepted", double(s.listeners[i].accepted));
      l.Set("requests", double(s.listeners[i].requests));
      l.Set("bytesRead", double(s.listeners[i].bytesRead));
      l.Set("bytesWritten", double(s.listeners[i].bytesWritten));
      ls.Set(i, l);
    }
    o.Set("listeners", ls);
    o.Set("connections", double(s.connections));
    o.Set("refusedConnections", double(s.refusedConnections));
    o.Set("malformedFrames", double(s.malformedFrames));
    o.Set("authFailures", double(s.authFailures));
    o.Set("deniedRequests", double(s.deniedRequests));
    o.Set("idleClosed", double(s.idleClosed));
    out.Set("server", o);
  }
  return out;
}

// ---- segments ----

void ReleaseWindow(Napi::Env, uint8_t*, std::shared_ptr<Segment>* hold) { delete hold; }

Napi::Value SegmentCreate(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Engine* e = EngineOf(info);
  if (!e) return Throw(env, kInvalidParams, "no such engine");
  std::string name = info[1].As<Napi::String>().Utf8Value();
  uint64_t size = uint64_t(Int(info[2]));
  bool grants = info[3].ToBoolean();
  if (name.empty() || name.size() > kMaxSegmentName) return Throw(env, kInvalidParams, "segment name must be 1-255 bytes");
  if (size == 0) return Throw(env, kInvalidParams, "segment size must be positive");
  if (e->segments().Find(name)) return Throw(env, -102, "segment '" + name + "' already exists");
  Result r;
  auto seg = Segment::Create(name, size, grants, &r);
  if (!seg) return ThrowResult(env, r);
  e->segments().Add(seg);
  Instance* in = Inst(env);
  uint32_t handle = in->nextSegment++;
  in->segments[handle] = SegmentHandle{uint32_t(Int(info[0])), seg};
  Napi::Object out = Napi::Object::New(env);
  out.Set("handle", handle);
  out.Set("path", seg->path());
  if (seg->hasGrantKey()) out.Set("grantKey", Napi::Buffer<uint8_t>::Copy(env, seg->grantKey(), kGrantKeySize));
  return out;
}

Napi::Value SegmentClose(const Napi::CallbackInfo& info) {
  Instance* in = Inst(info.Env());
  auto it = in->segments.find(uint32_t(Int(info[0])));
  if (it == in->segments.end()) return info.Env().Undefined();
  auto eng = in->engines.find(it->second.engine);
  if (eng != in->engines.end()) eng->second->segments().Remove(it->second.seg->name());
  it->second.seg->Retire();
  in->segments.erase(it);
  return info.Env().Undefined();
}

Napi::Value SegmentWindow(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  auto& segs = Inst(env)->segments;
  auto it = segs.find(uint32_t(Int(info[0])));
  if (it == segs.end()) return Throw(env, kSegmentNotFound, "the segment is closed");
  uint64_t off = uint64_t(Int(info[1])), n = uint64_t(Int(info[2]));
  if (n == 0 || n > (1ull << 30) || !it->second.seg->Contains(off, n))
    return Throw(env, kBufferOverflow, "window outside the segment or larger than 1 GiB");
  auto* hold = new std::shared_ptr<Segment>(it->second.seg);
  return Napi::Buffer<uint8_t>::New(env, it->second.seg->data() + off, size_t(n), ReleaseWindow, hold);
}

// ---- registered memory ----

// memoryRegister(engine, buffer)
Napi::Value MemoryRegister(const Napi::CallbackInfo& info) {
  uint8_t* data;
  size_t len;
  if (!EngineOf(info)) return Throw(info.Env(), kInvalidParams, "no such engine");
  if (!GetBytes(info[1], &data, &len)) return Throw(info.Env(), kInvalidParams, "expected a Uint8Array");
  Result r = Inst(info.Env())->memory[uint32_t(Int(info[0]))].Register(info[1], data, len);
  if (!r.ok()) return ThrowResult(info.Env(), r);
  return info.Env().Undefined();
}

// memoryUnregister(engine, buffer) -> true when removed, false while batches still use it
Napi::Value MemoryUnregister(const Napi::CallbackInfo& info) {
  uint8_t* data;
  size_t len;
  if (!GetBytes(info[1], &data, &len)) return Throw(info.Env(), kInvalidParams, "expected a Uint8Array");
  bool busy = false;
  Result r = Inst(info.Env())->memory[uint32_t(Int(info[0]))].Unregister(data, len, &busy);
  if (!r.ok()) return ThrowResult(info.Env(), r);
  return Napi::Boolean::New(info.Env(), !busy);
}

// ---- transfers ----

// submit(engine, peers: string[][], segments: string[], locals: Array<Uint8Array | segmentHandle>,
//        grants: Uint8Array (48 bytes per grant, packed), rows: Float64Array, sliceSize, timeoutMs,
//        transport) -> Promise<[status: Int32Array, viaMemcpy: Uint8Array, messages: (string|undefined)[] | undefined]>
// Row i = rows[8i .. 8i+7]: op, peer index, segment index, local index, local offset, remote
// offset, length, grant index (-1: none). A packed table instead of one object per request:
// reading object properties through N-API costs microseconds per request.
constexpr size_t kRowWidth = 8;

Napi::Value Submit(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Instance* in = Inst(env);
  Engine* e = EngineOf(info);
  if (!e || !e->client()) return Throw(env, kTransferFail, "the transfer engine is not running");
  if (!info[1].IsArray() || !info[2].IsArray() || !info[3].IsArray() || !info[5].IsTypedArray() ||
      info[5].As<Napi::TypedArray>().TypedArrayType() != napi_float64_array)
    return Throw(env, kInvalidParams, "submit: bad arguments");
  Napi::Array jp = info[1].As<Napi::Array>();
  std::vector<std::vector<std::string>> peers(jp.Length());
  for (uint32_t i = 0; i < jp.Length(); i++) {
    Napi::Array eps = jp.Get(i).As<Napi::Array>();
    for (uint32_t j = 0; j < eps.Length(); j++) peers[i].push_back(eps.Get(j).As<Napi::String>().Utf8Value());
  }
  Napi::Array js = info[2].As<Napi::Array>();
  std::vector<std::string> segNames(js.Length());
  for (uint32_t i = 0; i < js.Length(); i++) {
    segNames[i] = js.Get(i).As<Napi::String>().Utf8Value();
    if (segNames[i].empty() || segNames[i].size() > kMaxSegmentName) return Throw(env, kInvalidParams, "bad segment name");
  }
  uint8_t* grantBytes = nullptr;
  size_t grantLen = 0;
  if (!info[4].IsUndefined() && !info[4].IsNull() && !GetBytes(info[4], &grantBytes, &grantLen))
    return Throw(env, kInvalidParams, "submit: grants must be a Uint8Array");
  const size_t grantCount = grantLen / kGrantWireSize;
  std::vector<Grant> grants(grantCount);
  for (size_t i = 0; i < grantCount; i++)
    if (!DecodeGrant(grantBytes + i * kGrantWireSize, &grants[i])) return Throw(env, kInvalidParams, "malformed grant");
  Napi::Float64Array rows = info[5].As<Napi::Float64Array>();
  const double* row = rows.Data();
  const size_t n = rows.ElementLength() / kRowWidth;

  const uint32_t engineId = uint32_t(Int(info[0]));
  LocalMemory& memory = in->memory[engineId];
  // Locals: a buffer (pinned once per registration it touches) or a segment of this engine.
  struct Local {
    uint8_t* data = nullptr;
    size_t len = 0;
    bool isSegment = false;
    std::shared_ptr<Segment> seg;
    uintptr_t pinStart = 0;  // the registration pinned for this local (0: none yet)
    size_t pinLen = 0;
  };
  Napi::Array jl = info[3].As<Napi::Array>();
  std::vector<Local> locals(jl.Length());
  std::vector<uintptr_t> pinned;
  std::vector<std::shared_ptr<void>> pins;
  auto unpinAll = [&] {
    for (uintptr_t k : pinned) memory.Unpin(k);
  };
  for (uint32_t i = 0; i < jl.Length(); i++) {
    Napi::Value v = jl.Get(i);
    Local& l = locals[i];
    if (v.IsNumber()) {
      auto it = in->segments.find(uint32_t(Int(v)));
      if (it == in->segments.end()) return unpinAll(), Throw(env, kSegmentNotFound, "the local segment is closed");
      l.isSegment = true;
      l.seg = it->second.seg;
      l.data = l.seg->data();
      l.len = l.seg->size();
      pins.push_back(l.seg);
    } else if (!GetBytes(v, &l.data, &l.len)) {
      return unpinAll(), Throw(env, kInvalidParams, "local buffer expected");
    }
  }
  std::vector<RequestSpec> reqs(n);
  for (size_t i = 0; i < n; i++) {
    const double* f = row + i * kRowWidth;
    const double segIndex = f[2], localIndex = f[3], grantIndex = f[7];
    // Checked as doubles before any conversion (converting an out-of-range double is undefined).
    constexpr double kTwo64 = 18446744073709551616.0;
    if (!(f[0] >= 0 && f[0] < 256) || !(f[1] >= 0 && f[1] < 4294967296.0) || !(segIndex >= 0 && segIndex < double(segNames.size())) ||
        !(localIndex >= 0 && localIndex < double(locals.size())) || !(f[4] >= 0 && f[4] < kTwo64) ||
        !(f[5] >= 0 && f[5] < kTwo64) || !(f[6] >= 0 && f[6] < kTwo64) || !(grantIndex < double(grantCount)))
      return unpinAll(), Throw(env, kInvalidParams, "submit: bad request row");
    RequestSpec& r = reqs[i];
    // The op's low two bits; bit 2 asks for the CRC32C of the local bytes.
    r.op = uint8_t(f[0]) & 3;
    r.wantCrc = (uint8_t(f[0]) & 4) != 0;
    r.peer = uint32_t(f[1]);
    const uint64_t localOffset = uint64_t(f[4]);
    r.offset = uint64_t(f[5]);
    r.length = uint64_t(f[6]);
    r.segment = segNames[size_t(segIndex)];
    Local& l = locals[size_t(localIndex)];
    if (localOffset > l.len || r.length > l.len - localOffset)
      return unpinAll(), Throw(env, kBufferOverflow, l.isSegment ? "local range outside the local segment" : "local range outside the local buffer");
    r.local = l.data + localOffset;
    if (!l.isSegment) {
      const uintptr_t a = reinterpret_cast<uintptr_t>(r.local);
      if (!(l.pinStart && a >= l.pinStart && a - l.pinStart <= l.pinLen && r.length <= l.pinLen - (a - l.pinStart))) {
        uintptr_t key;
        size_t regLen;
        Result pr = memory.Pin(r.local, size_t(r.length), &key, &regLen);
        if (!pr.ok()) return unpinAll(), ThrowResult(env, pr);
        pinned.push_back(key);
        l.pinStart = key;
        l.pinLen = regLen;
      }
    }
    if (grantIndex >= 0) {
      r.grant = grants[size_t(grantIndex)];
      r.hasGrant = true;
    }
  }
  uint64_t sliceSize = uint64_t(Int(info[6]));
  int64_t timeoutMs = Int(info[7]);
  uint8_t transport = uint8_t(Int(info[8]));

  auto deferred = std::make_shared<Napi::Promise::Deferred>(Napi::Promise::Deferred::New(env));
  Tsfn tsfn = in->tsfn;
  Client::Done done = [tsfn, deferred, pinned, engineId](std::vector<RequestResult>&& results) {
    auto shared = std::make_shared<std::vector<RequestResult>>(std::move(results));
    Post(tsfn, [deferred, pinned, shared, engineId](Napi::Env env) {
      Instance* in = Inst(env);
      auto mem = in->memory.find(engineId);
      if (mem != in->memory.end())
        for (uintptr_t k : pinned) mem->second.Unpin(k);
      const size_t n = shared->size();
      Napi::Int32Array status = Napi::Int32Array::New(env, n);
      Napi::Uint8Array via = Napi::Uint8Array::New(env, n);
      Napi::Uint32Array crcs = Napi::Uint32Array::New(env, n);
      Napi::Value messages = env.Undefined();
      int32_t* st = status.Data();
      uint8_t* vm = via.Data();
      uint32_t* cr = crcs.Data();
      for (size_t i = 0; i < n; i++) {
        const RequestResult& r = (*shared)[i];
        st[i] = r.status;
        vm[i] = r.viaMemcpy ? 1 : 0;
        cr[i] = r.crc;
        if (r.status != kOk) {
          if (messages.IsUndefined()) messages = Napi::Array::New(env, n);
          messages.As<Napi::Array>().Set(uint32_t(i), r.message);
        }
      }
      Napi::Array out = Napi::Array::New(env, 4);
      out.Set(0u, status);
      out.Set(1u, via);
      out.Set(2u, messages);
      out.Set(3u, crcs);
      EndPending(env);
      deferred->Resolve(out);
    });
  };
  BeginPending(env);
  Result r = e->client()->Submit(peers, std::move(reqs), sliceSize, timeoutMs, transport, std::move(done), std::move(pins));
  if (!r.ok()) {
    EndPending(env);
    unpinAll();
    return ThrowResult(env, r);
  }
  return deferred->Promise();
}

Napi::Value AbiVersion(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), kNativeAbiVersion); }

void Cleanup(void* arg) {
  Instance* in = static_cast<Instance*>(arg);
  for (auto& kv : in->engines) kv.second->Close();
  in->engines.clear();
  in->segments.clear();
  in->memory.clear();
  UnlinkOwnedSegmentFiles();
}

}  // namespace

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  auto* in = new Instance();
  env.SetInstanceData<Instance>(in);
  in->tsfn = Tsfn::New(env, "mooncake-transfer", 0, 1);
  in->tsfn.Unref(env);
  // Registered after the thread-safe function, so it runs before its teardown (hooks run in
  // reverse order): engine threads are joined while completions can still be posted.
  napi_add_env_cleanup_hook(env, Cleanup, in);

  exports.Set("abiVersion", Napi::Function::New(env, AbiVersion));
  exports.Set("crc32c", Napi::Function::New(env, Crc32cFn));
  exports.Set("crc32cHardware", Napi::Function::New(env, Crc32cHardwareFn));
  exports.Set("hmacSha256Into", Napi::Function::New(env, HmacSha256IntoFn));
  exports.Set("crc32cAsync", Napi::Function::New(env, Crc32cAsyncFn));
  exports.Set("grantMac", Napi::Function::New(env, GrantMacFn));
  exports.Set("sweepSegments", Napi::Function::New(env, SweepFn));
  exports.Set("engineCreate", Napi::Function::New(env, EngineCreate));
  exports.Set("engineStart", Napi::Function::New(env, EngineStart));
  exports.Set("engineClose", Napi::Function::New(env, EngineClose));
  exports.Set("engineRelease", Napi::Function::New(env, EngineRelease));
  exports.Set("engineCloseListener", Napi::Function::New(env, EngineCloseListener));
  exports.Set("engineStats", Napi::Function::New(env, EngineStats));
  exports.Set("segmentCreate", Napi::Function::New(env, SegmentCreate));
  exports.Set("segmentClose", Napi::Function::New(env, SegmentClose));
  exports.Set("segmentWindow", Napi::Function::New(env, SegmentWindow));
  exports.Set("memoryRegister", Napi::Function::New(env, MemoryRegister));
  exports.Set("memoryUnregister", Napi::Function::New(env, MemoryUnregister));
  exports.Set("submit", Napi::Function::New(env, Submit));
  return exports;
}

}  // namespace mooncake

static Napi::Object InitModule(Napi::Env env, Napi::Object exports) { return mooncake::Init(env, exports); }

NODE_API_MODULE(mooncake_native, InitModule)
