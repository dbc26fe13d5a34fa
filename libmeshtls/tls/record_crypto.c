/*
 * TLS record AES-GCM on VAES and AVX-512: Intel's multi-buffer crypto library (libipsec-mb,
 * linked in statically), plugged into wolfSSL's record layer through its crypto callbacks.
 *
 * wolfSSL 5.9.2's AES-GCM uses 128-bit AES-NI (~5 GB/s on one core here); the same core runs the
 * copies of every byte, so single-stream bulk stays well below plain TCP. ipsec-mb's VAES code
 * (512-bit registers, 48 GHASH key powers) runs ~13 GB/s on 16 KiB records on these CPUs. The
 * context's device id (context.c) makes wolfSSL offer each AES-GCM operation of a record to
 * record_crypto_callback first; what it declines (CRYPTOCB_UNAVAILABLE) runs wolfSSL's own code,
 * which is also the whole story on a CPU without VAES+AVX-512, with MESHTLS_RECORD_CRYPTO=software
 * in the environment, and in a build without libipsec-mb or with a wolfSSL without crypto
 * callbacks (-Dwolfssl=system): there mt_tls_record_crypto_device() is INVALID_DEVID.
 *
 * Owns, per AES key, a key schedule in ipsec-mb's layout (1 KiB: round keys and 48 powers of the
 * GHASH key), made on the first record long enough to gain from it and kept in the Aes object's
 * devCtx; it is wiped and freed when wolfSSL frees the Aes (WOLF_CRYPTO_CB_FREE), which it does
 * before it sets a new key in the same object. Must never decide anything about the TLS: it
 * computes exactly AES-GCM, and a decryption whose tag does not match fails with wolfSSL's own
 * error (AES_GCM_AUTH_E) and leaves no plaintext behind, as wolfSSL's code does.
 */
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include <wolfssl/options.h>
#include <wolfssl/wolfcrypt/aes.h>
#include <wolfssl/wolfcrypt/error-crypt.h>
#include <wolfssl/wolfcrypt/types.h>
#if defined(WOLF_CRYPTO_CB)
#include <wolfssl/wolfcrypt/cryptocb.h>
#endif

#include "../util/log.h"
#include "internal.h"

#if defined(MT_HAVE_IPSEC_MB) && defined(WOLF_CRYPTO_CB) && defined(WOLF_CRYPTO_CB_FREE) &&        \
    defined(HAVE_AESGCM) && (defined(__x86_64__) || defined(_M_X64))
#define MT_RECORD_CRYPTO_FAST 1
#endif

static atomic_ulong fast_records;

unsigned long mt_tls_record_crypto_fast_records(void)
{
    return atomic_load_explicit(&fast_records, memory_order_relaxed);
}

#ifndef MT_RECORD_CRYPTO_FAST

int mt_tls_record_crypto_device(void)
{
    return INVALID_DEVID;
}

void mt_tls_record_crypto_set_min_length(size_t length)
{
    (void)length;
}

const char *mt_tls_record_crypto_describe(void)
{
    return "wolfSSL's own (this build has no VAES path: it needs libipsec-mb and a wolfSSL with "
           "crypto callbacks)";
}

#else

#include <cpuid.h>
#include <pthread.h>

#include <intel-ipsec-mb.h>

/*
 * ipsec-mb 1.3's direct GCM entry points for VAES+AVX-512. The library exports them, and they are
 * what its multi-buffer manager calls (init_mb_mgr_avx512 on a VAES CPU), but its header declares
 * only the AVX2 (avx_gen4) ones; calling them directly links just the GCM objects instead of the
 * whole manager (every cipher of the library, ~20 MB). Same signatures as the avx_gen4 ones.
 */
void aes_gcm_pre_128_vaes_avx512(const void *key, struct gcm_key_data *key_data);
void aes_gcm_pre_256_vaes_avx512(const void *key, struct gcm_key_data *key_data);
void aes_gcm_enc_128_vaes_avx512(const struct gcm_key_data *key_data,
                                 struct gcm_context_data *context_data, uint8_t *out,
                                 const uint8_t *in, uint64_t length, const uint8_t *iv,
                                 const uint8_t *aad, uint64_t aad_length, uint8_t *tag,
                                 uint64_t tag_length);
void aes_gcm_enc_256_vaes_avx512(const struct gcm_key_data *key_data,
                                 struct gcm_context_data *context_data, uint8_t *out,
                                 const uint8_t *in, uint64_t length, const uint8_t *iv,
                                 const uint8_t *aad, uint64_t aad_length, uint8_t *tag,
                                 uint64_t tag_length);
void aes_gcm_dec_128_vaes_avx512(const struct gcm_key_data *key_data,
                                 struct gcm_context_data *context_data, uint8_t *out,
                                 const uint8_t *in, uint64_t length, const uint8_t *iv,
                                 const uint8_t *aad, uint64_t aad_length, uint8_t *tag,
                                 uint64_t tag_length);
void aes_gcm_dec_256_vaes_avx512(const struct gcm_key_data *key_data,
                                 struct gcm_context_data *context_data, uint8_t *out,
                                 const uint8_t *in, uint64_t length, const uint8_t *iv,
                                 const uint8_t *aad, uint64_t aad_length, uint8_t *tag,
                                 uint64_t tag_length);

/* Any id wolfSSL does not use itself (INVALID_DEVID is -2; hardware ports use small positives). */
#define DEVICE_ID 0x6d74 /* "mt" */

#define GCM_NONCE_LENGTH 12
#define GCM_TAG_LENGTH 16

/*
 * Records shorter than this stay with wolfSSL's code: its AES-NI path is as fast on a few hundred
 * bytes, and a connection that only ever carries short messages (RPCs, keep-alives) never pays
 * the 1 KiB key schedule in each direction.
 */
#define FAST_MIN_LENGTH 512

static size_t fast_min_length = FAST_MIN_LENGTH;

void mt_tls_record_crypto_set_min_length(size_t length)
{
    fast_min_length = length;
}

static pthread_once_t device_once = PTHREAD_ONCE_INIT;
static int device_id = INVALID_DEVID;
static const char *device_description = "wolfSSL's own";

/*
 * What ipsec-mb's VAES GCM code executes (its init_mb_mgr_auto picks the same code under the same
 * conditions): AVX-512 F/DQ/BW/VL, VAES, VPCLMULQDQ, and an OS that saves the ZMM state.
 */
static bool cpu_has_vaes_avx512(void)
{
    unsigned eax, ebx, ecx, edx;
    if (__get_cpuid_max(0, NULL) < 7 || !__get_cpuid(1, &eax, &ebx, &ecx, &edx))
        return false;
    const unsigned osxsave = 1u << 27, aes = 1u << 25, pclmul = 1u << 1;
    if ((ecx & osxsave) == 0 || (ecx & aes) == 0 || (ecx & pclmul) == 0)
        return false;
    unsigned xcr0_low, xcr0_high;
    __asm__ volatile("xgetbv" : "=a"(xcr0_low), "=d"(xcr0_high) : "c"(0));
    /* SSE, AVX, opmask, upper halves of ZMM0-15, ZMM16-31. */
    const unsigned zmm_state = (1u << 1) | (1u << 2) | (1u << 5) | (1u << 6) | (1u << 7);
    if ((xcr0_low & zmm_state) != zmm_state)
        return false;
    __cpuid_count(7, 0, eax, ebx, ecx, edx);
    const unsigned avx512f = 1u << 16, avx512dq = 1u << 17, avx512bw = 1u << 30,
                   avx512vl = 1u << 31;
    const unsigned vaes = 1u << 9, vpclmulqdq = 1u << 10;
    const unsigned needed_ebx = avx512f | avx512dq | avx512bw | avx512vl;
    return (ebx & needed_ebx) == needed_ebx && (ecx & vaes) != 0 && (ecx & vpclmulqdq) != 0;
}

/* Constant time: how long it takes says nothing about where the tags differ. */
static bool tags_equal(const uint8_t *a, const uint8_t *b, size_t length)
{
    uint8_t difference = 0;
    for (size_t i = 0; i < length; i++)
        difference |= (uint8_t)(a[i] ^ b[i]);
    return difference == 0;
}

/* What aes->devCtx points to: ipsec-mb's schedule of one key, and that key's length. */
struct fast_key {
    struct gcm_key_data schedule; /* 64-byte aligned, as ipsec-mb lays it out */
    size_t key_length;
};

/*
 * The schedule of aes's current key, made on first use. Round key 0 of an AES-128 schedule (0 and
 * 1 of AES-256) is the key itself: a schedule whose first bytes or length are not aes's key
 * belongs to a key set since (wolfSSL frees the Aes before it sets a new key, but nothing here
 * depends on it).
 */
static const struct gcm_key_data *schedule_of(Aes *aes)
{
    size_t key_length = (size_t)aes->keylen;
    struct fast_key *fast = aes->devCtx;
    if (fast != NULL && fast->key_length == key_length &&
        tags_equal(fast->schedule.expanded_keys, (const uint8_t *)aes->devKey, key_length))
        return &fast->schedule;
    if (fast == NULL) {
        fast = aligned_alloc(_Alignof(struct fast_key), sizeof(*fast));
        if (fast == NULL)
            return NULL;
        aes->devCtx = fast;
    }
    fast->key_length = key_length;
    if (key_length == 16)
        aes_gcm_pre_128_vaes_avx512(aes->devKey, &fast->schedule);
    else
        aes_gcm_pre_256_vaes_avx512(aes->devKey, &fast->schedule);
    return &fast->schedule;
}

static void schedule_free(Aes *aes)
{
    struct fast_key *fast = aes->devCtx;
    if (fast == NULL)
        return;
    explicit_bzero(fast, sizeof(*fast));
    free(fast);
    aes->devCtx = NULL;
}

/* Whether this operation is one the fast path takes: TLS records' shape, keys of 128/256 bits. */
static bool is_fast_shape(const Aes *aes, word32 length, word32 iv_length, word32 tag_length)
{
    return length >= fast_min_length && iv_length == GCM_NONCE_LENGTH &&
           tag_length == GCM_TAG_LENGTH && (aes->keylen == 16 || aes->keylen == 32);
}

/* Counts a record done here; the first one in a process is logged (the proof it is in use). */
static void count_fast_record(void)
{
    if (atomic_fetch_add_explicit(&fast_records, 1, memory_order_relaxed) == 0)
        mt_log_debug("AES-GCM records: first record on %s", device_description);
}

static int encrypt(const wc_CryptoCb_AesAuthEnc *operation)
{
    Aes *aes = operation->aes;
    if (!is_fast_shape(aes, operation->sz, operation->ivSz, operation->authTagSz))
        return CRYPTOCB_UNAVAILABLE;
    const struct gcm_key_data *schedule = schedule_of(aes);
    if (schedule == NULL)
        return CRYPTOCB_UNAVAILABLE; /* no memory for it: wolfSSL's code needs none */
    struct gcm_context_data state;
    (aes->keylen == 16 ? aes_gcm_enc_128_vaes_avx512 : aes_gcm_enc_256_vaes_avx512)(
        schedule, &state, operation->out, operation->in, operation->sz, operation->iv,
        operation->authIn, operation->authInSz, operation->authTag, GCM_TAG_LENGTH);
    explicit_bzero(&state, sizeof(state));
    count_fast_record();
    return 0;
}

static int decrypt(const wc_CryptoCb_AesAuthDec *operation)
{
    Aes *aes = operation->aes;
    if (!is_fast_shape(aes, operation->sz, operation->ivSz, operation->authTagSz))
        return CRYPTOCB_UNAVAILABLE;
    const struct gcm_key_data *schedule = schedule_of(aes);
    if (schedule == NULL)
        return CRYPTOCB_UNAVAILABLE;
    struct gcm_context_data state;
    uint8_t tag[GCM_TAG_LENGTH];
    (aes->keylen == 16 ? aes_gcm_dec_128_vaes_avx512 : aes_gcm_dec_256_vaes_avx512)(
        schedule, &state, operation->out, operation->in, operation->sz, operation->iv,
        operation->authIn, operation->authInSz, tag, GCM_TAG_LENGTH);
    explicit_bzero(&state, sizeof(state));
    bool authentic = tags_equal(tag, operation->authTag, GCM_TAG_LENGTH);
    explicit_bzero(tag, sizeof(tag));
    count_fast_record();
    if (!authentic) {
        /* Forged or damaged: nothing of what it decrypted to may reach anyone. */
        explicit_bzero(operation->out, operation->sz);
        return AES_GCM_AUTH_E;
    }
    return 0;
}

static int record_crypto_callback(int device, wc_CryptoInfo *info, void *context)
{
    (void)device;
    (void)context;
    if (info->algo_type == WC_ALGO_TYPE_FREE) {
        if (info->free.algo == WC_ALGO_TYPE_CIPHER && info->free.type == WC_CIPHER_AES)
            schedule_free(info->free.obj);
        /* wolfSSL's own free still runs (it wipes its key schedule) only on this answer. */
        return CRYPTOCB_UNAVAILABLE;
    }
    if (info->algo_type != WC_ALGO_TYPE_CIPHER || info->cipher.type != WC_CIPHER_AES_GCM)
        return CRYPTOCB_UNAVAILABLE;
    return info->cipher.enc ? encrypt(&info->cipher.aesgcm_enc) : decrypt(&info->cipher.aesgcm_dec);
}

static void device_init(void)
{
    const char *choice = secure_getenv("MESHTLS_RECORD_CRYPTO");
    if (choice != NULL && strcmp(choice, "software") == 0) {
        device_description = "wolfSSL's own (MESHTLS_RECORD_CRYPTO=software)";
        return;
    }
    /* wolfCrypt's table of devices is set up by its initialisation (wolfCrypt_Init). */
    if (!mt_result_is_ok(mt_tls_global_init())) {
        device_description = "wolfSSL's own (wolfSSL could not be initialised)";
        return;
    }
    if (!cpu_has_vaes_avx512()) {
        device_description = "wolfSSL's own (this CPU has no VAES with AVX-512)";
        return;
    }
    if (wc_CryptoCb_RegisterDevice(DEVICE_ID, record_crypto_callback, NULL) != 0) {
        device_description = "wolfSSL's own (the crypto callback could not be registered)";
        return;
    }
    device_id = DEVICE_ID;
    device_description = "VAES AVX-512 (intel-ipsec-mb " IMB_VERSION_STR ") for AES-GCM records";
}

int mt_tls_record_crypto_device(void)
{
    pthread_once(&device_once, device_init);
    return device_id;
}

const char *mt_tls_record_crypto_describe(void)
{
    pthread_once(&device_once, device_init);
    return device_description;
}

#endif
