{
  "targets": [
    {
      "target_name": "setls_aead",
      "sources": ["setls_aead.c"],
      "cflags": ["-O2", "-Wall", "-Wextra", "-Werror=implicit-function-declaration"],
      "defines": ["NAPI_VERSION=8"]
    }
  ]
}
