{
  "targets": [
    {
      "target_name": "mooncake_native",
      "sources": [
        "native/addon.cc",
        "native/auth.cc",
        "native/client.cc",
        "native/crc32c.cc",
        "native/crc32c_fold.cc",
        "native/grant.cc",
        "native/local_memory.cc",
        "native/segment.cc",
        "native/server.cc",
        "native/sockio.cc",
        "native/wire.cc"
      ],
      "include_dirs": ["<!(node -p \"require('node-addon-api').include_dir\")"],
      "defines": ["NAPI_VERSION=9", "NAPI_DISABLE_CPP_EXCEPTIONS", "NODE_ADDON_API_DISABLE_DEPRECATED"],
      "cflags_cc!": ["-fno-exceptions", "-fno-rtti"],
      "cflags_cc": ["-std=c++17", "-O2", "-Wall", "-Wextra", "-Wno-unused-parameter", "-fvisibility=hidden"],
      "libraries": ["-lpthread"]
    }
  ]
}
