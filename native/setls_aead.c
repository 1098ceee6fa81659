/*
 * setls_aead: AEAD record sealing into a buffer the caller owns, over the OpenSSL that Node itself
 * carries (the EVP symbols the node binary exports; headers from Node's include directory).
 *
 * Why: node:crypto's cipher.update() returns a fresh, zero-filled buffer per call, freed only at
 * V8's next young-generation GC. On a bulk download that is one 16 KiB allocation per record, a
 * memset over it and, because the freed memory goes cold between GCs, a page fault per 4 KiB
 * (docs/architecture.md, "exported bulk"). Here the key schedule is set once per key and each record
 * is sealed straight into a slab the host recycles once the socket has written it.
 *
 * What it does not do: key derivation, nonces, record framing, opening records; those stay in
 * TypeScript (src/tls/record/native-seal.ts loads this module and falls back to node:crypto when it
 * is missing). Only AES-128-GCM, AES-256-GCM and ChaCha20-Poly1305 with 12-byte nonces and 16-byte
 * tags: the AEADs of TLS 1.3 and TLS 1.2 that take several update calls.
 *
 *   sealerNew(aead: string, key: Uint8Array) -> sealer (an external; its key lives in OpenSSL's context)
 *   sealerFree(sealer)                       -> wipes and frees the context now (later seals throw)
 *   seal(sealer, nonce, aad, pieces: Uint8Array[], last: Uint8Array, out: Uint8Array, offset)
 *                                            -> bytes written at out[offset..]: ciphertext of
 *                                               pieces ‖ last, then the 16-byte tag
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <node_api.h>
#include <openssl/evp.h>

#define TAG_LENGTH 16
#define NONCE_LENGTH 12
#define MAX_PIECES 64

typedef struct {
  EVP_CIPHER_CTX *ctx;
} sealer_t;

static napi_value fail(napi_env env, const char *code, const char *message) {
  napi_throw_error(env, code, message);
  return NULL;
}

#define CHECK(call)                                                        \
  do {                                                                     \
    if ((call) != napi_ok) return fail(env, "ERR_TLS_INTERNAL", #call);    \
  } while (0)

static void sealer_finalize(napi_env env, void *data, void *hint) {
  (void)env;
  (void)hint;
  sealer_t *s = (sealer_t *)data;
  if (s->ctx != NULL) EVP_CIPHER_CTX_free(s->ctx); /* cleanses the key schedule */
  free(s);
}

/* A Uint8Array argument (Buffers are Uint8Arrays): its bytes and length. */
static int bytes_of(napi_env env, napi_value v, uint8_t **data, size_t *length) {
  bool is_ta = false;
  if (napi_is_typedarray(env, v, &is_ta) != napi_ok || !is_ta) return 0;
  napi_typedarray_type type;
  void *p = NULL;
  napi_value ab;
  size_t off;
  if (napi_get_typedarray_info(env, v, &type, length, &p, &ab, &off) != napi_ok) return 0;
  if (type != napi_uint8_array && type != napi_uint8_clamped_array) return 0;
  *data = (uint8_t *)p;
  return 1;
}

static sealer_t *sealer_of(napi_env env, napi_value v) {
  napi_valuetype t;
  if (napi_typeof(env, v, &t) != napi_ok || t != napi_external) return NULL;
  void *p = NULL;
  if (napi_get_value_external(env, v, &p) != napi_ok) return NULL;
  return (sealer_t *)p;
}

static napi_value sealer_new(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc != 2) return fail(env, "ERR_TLS_INTERNAL", "sealerNew(aead, key)");
  char name[32];
  size_t name_len = 0;
  if (napi_get_value_string_utf8(env, argv[0], name, sizeof name, &name_len) != napi_ok) return fail(env, "ERR_TLS_INTERNAL", "aead must be a string");
  const EVP_CIPHER *cipher = NULL;
  if (strcmp(name, "aes-128-gcm") == 0) cipher = EVP_aes_128_gcm();
  else if (strcmp(name, "aes-256-gcm") == 0) cipher = EVP_aes_256_gcm();
  else if (strcmp(name, "chacha20-poly1305") == 0) cipher = EVP_chacha20_poly1305();
  else return fail(env, "ERR_TLS_INTERNAL", "unsupported AEAD");
  uint8_t *key = NULL;
  size_t key_len = 0;
  if (!bytes_of(env, argv[1], &key, &key_len)) return fail(env, "ERR_TLS_INTERNAL", "key must be a Uint8Array");
  if ((int)key_len != EVP_CIPHER_get_key_length(cipher)) return fail(env, "ERR_TLS_INTERNAL", "wrong key length");

  sealer_t *s = (sealer_t *)calloc(1, sizeof *s);
  if (s == NULL) return fail(env, "ERR_TLS_INTERNAL", "out of memory");
  s->ctx = EVP_CIPHER_CTX_new();
  if (s->ctx == NULL || EVP_EncryptInit_ex(s->ctx, cipher, NULL, NULL, NULL) != 1 ||
      EVP_CIPHER_CTX_ctrl(s->ctx, EVP_CTRL_AEAD_SET_IVLEN, NONCE_LENGTH, NULL) != 1 ||
      EVP_EncryptInit_ex(s->ctx, NULL, NULL, key, NULL) != 1) {
    if (s->ctx != NULL) EVP_CIPHER_CTX_free(s->ctx);
    free(s);
    return fail(env, "ERR_TLS_INTERNAL", "cipher context set-up failed");
  }
  napi_value out;
  if (napi_create_external(env, s, sealer_finalize, NULL, &out) != napi_ok) {
    EVP_CIPHER_CTX_free(s->ctx);
    free(s);
    return fail(env, "ERR_TLS_INTERNAL", "napi_create_external");
  }
  return out;
}

static napi_value sealer_free(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  sealer_t *s = argc == 1 ? sealer_of(env, argv[0]) : NULL;
  if (s == NULL) return fail(env, "ERR_TLS_INTERNAL", "sealerFree(sealer)");
  if (s->ctx != NULL) {
    EVP_CIPHER_CTX_free(s->ctx);
    s->ctx = NULL;
  }
  return NULL;
}

static napi_value seal(napi_env env, napi_callback_info info) {
  size_t argc = 7;
  napi_value argv[7];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc != 7) return fail(env, "ERR_TLS_INTERNAL", "seal(sealer, nonce, aad, pieces, last, out, offset)");
  sealer_t *s = sealer_of(env, argv[0]);
  if (s == NULL) return fail(env, "ERR_TLS_INTERNAL", "not a sealer");
  if (s->ctx == NULL) return fail(env, "ERR_TLS_INTERNAL", "sealer already freed");
  uint8_t *nonce, *aad, *last, *out;
  size_t nonce_len, aad_len, last_len, out_len;
  if (!bytes_of(env, argv[1], &nonce, &nonce_len) || nonce_len != NONCE_LENGTH) return fail(env, "ERR_TLS_INTERNAL", "nonce must be 12 bytes");
  if (!bytes_of(env, argv[2], &aad, &aad_len)) return fail(env, "ERR_TLS_INTERNAL", "aad must be a Uint8Array");
  if (!bytes_of(env, argv[4], &last, &last_len)) return fail(env, "ERR_TLS_INTERNAL", "last must be a Uint8Array");
  if (!bytes_of(env, argv[5], &out, &out_len)) return fail(env, "ERR_TLS_INTERNAL", "out must be a Uint8Array");
  int64_t offset64 = 0;
  if (napi_get_value_int64(env, argv[6], &offset64) != napi_ok || offset64 < 0 || (uint64_t)offset64 > out_len) return fail(env, "ERR_TLS_INTERNAL", "offset out of range");
  size_t offset = (size_t)offset64;

  bool is_array = false;
  CHECK(napi_is_array(env, argv[3], &is_array));
  if (!is_array) return fail(env, "ERR_TLS_INTERNAL", "pieces must be an array");
  uint32_t n = 0;
  CHECK(napi_get_array_length(env, argv[3], &n));
  if (n > MAX_PIECES) return fail(env, "ERR_TLS_INTERNAL", "too many pieces");
  uint8_t *pdata[MAX_PIECES];
  size_t plen[MAX_PIECES];
  size_t total = last_len;
  for (uint32_t i = 0; i < n; i++) {
    napi_value e;
    CHECK(napi_get_element(env, argv[3], i, &e));
    if (!bytes_of(env, e, &pdata[i], &plen[i])) return fail(env, "ERR_TLS_INTERNAL", "pieces must be Uint8Arrays");
    total += plen[i];
  }
  /* TLS records hold at most 2^14 + 256 bytes; anything near INT_MAX is a caller bug */
  if (total > (1u << 20) || aad_len > 64) return fail(env, "ERR_TLS_INTERNAL", "record too long");
  if (out_len - offset < total + TAG_LENGTH) return fail(env, "ERR_TLS_INTERNAL", "output buffer too small");
  uint8_t *o = out + offset;
  /* the output must not overlap an input (OpenSSL requires in == out or no overlap; we allow neither) */
  for (uint32_t i = 0; i <= n; i++) {
    const uint8_t *p = i < n ? pdata[i] : last;
    size_t l = i < n ? plen[i] : last_len;
    if (l != 0 && p < o + total + TAG_LENGTH && o < p + l) return fail(env, "ERR_TLS_INTERNAL", "output overlaps an input");
  }

  int len = 0;
  size_t w = 0;
  if (EVP_EncryptInit_ex(s->ctx, NULL, NULL, NULL, nonce) != 1) return fail(env, "ERR_TLS_INTERNAL", "nonce set-up failed");
  if (aad_len != 0 && EVP_EncryptUpdate(s->ctx, NULL, &len, aad, (int)aad_len) != 1) return fail(env, "ERR_TLS_INTERNAL", "AAD failed");
  for (uint32_t i = 0; i <= n; i++) {
    const uint8_t *p = i < n ? pdata[i] : last;
    size_t l = i < n ? plen[i] : last_len;
    if (l == 0) continue;
    if (EVP_EncryptUpdate(s->ctx, o + w, &len, p, (int)l) != 1) return fail(env, "ERR_TLS_INTERNAL", "encryption failed");
    w += (size_t)len;
  }
  if (EVP_EncryptFinal_ex(s->ctx, o + w, &len) != 1) return fail(env, "ERR_TLS_INTERNAL", "encryption final failed");
  w += (size_t)len;
  if (w != total) return fail(env, "ERR_TLS_INTERNAL", "AEAD output length mismatch");
  if (EVP_CIPHER_CTX_ctrl(s->ctx, EVP_CTRL_AEAD_GET_TAG, TAG_LENGTH, o + w) != 1) return fail(env, "ERR_TLS_INTERNAL", "tag failed");
  napi_value result;
  CHECK(napi_create_uint32(env, (uint32_t)(w + TAG_LENGTH), &result));
  return result;
}

static napi_value init(napi_env env, napi_value exports) {
  napi_property_descriptor props[] = {
      {"sealerNew", NULL, sealer_new, NULL, NULL, NULL, napi_enumerable, NULL},
      {"sealerFree", NULL, sealer_free, NULL, NULL, NULL, napi_enumerable, NULL},
      {"seal", NULL, seal, NULL, NULL, NULL, napi_enumerable, NULL},
  };
  if (napi_define_properties(env, exports, sizeof props / sizeof props[0], props) != napi_ok) return NULL;
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
