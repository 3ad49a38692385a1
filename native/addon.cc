// Module entry: a flat table of functions; each subsystem registers its own.
#include <napi.h>

namespace mooncake {
constexpr uint32_t kNativeAbiVersion = 1;
}  // namespace mooncake

static Napi::Value AbiVersion(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), mooncake::kNativeAbiVersion);
}

static Napi::Object Init(Napi::Env env, Napi::Object exports) {
  exports.Set("abiVersion", Napi::Function::New(env, AbiVersion));
  return exports;
}

NODE_API_MODULE(mooncake_native, Init)
