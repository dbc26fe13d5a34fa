/*
 * TLS 1.3 session resumption: the server's sealed tickets and the client's kept sessions (see
 * resumption.h for what each binds and why).
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include <wolfssl/options.h>
#include <wolfssl/ssl.h>
#include <wolfssl/wolfcrypt/aes.h>

#include "../util/secret.h"
#include "../util/sys.h"
#include "resumption.h"

/*
 * Tickets whose binding is remembered: a client holding an older one gets a full handshake. A
 * slot costs 40 bytes and the peer's SPIFFE ID; the table is allocated at the first ticket.
 */
#define TICKET_SLOTS 1024
/* Destinations a client keeps a session for; the least recently used goes first. */
#define CLIENT_SESSIONS 128

#define TICKET_KEY_SIZE 32 /* AES-256-GCM */
#define GCM_NONCE_SIZE 12
#define GCM_TAG_SIZE 16

struct ticket_slot {
    unsigned char name[WOLFSSL_TICKET_NAME_SZ]; /* slot index (4 bytes), then random */
    char *peer_id;                              /* NULL: free */
    long long expires_ms;
    size_t length; /* the sealed body's: a ticket claiming another length is not opened */
};

struct client_session {
    unsigned char destination[MT_TLS_DESTINATION_MAX];
    size_t destination_length; /* 0: free */
    WOLFSSL_SESSION *session;
    char *peer_id;
    long long expires_ms;
    long long used_ms;
};

/* The ticket key's AES context, in a secret mapping (out of core dumps, wiped when freed). */
struct ticket_key {
    Aes aes;
};

struct mt_tls_resumption {
    unsigned lifetime_s;
    struct ticket_key *ticket_key; /* ticket_key, slots, next_slot: under ticket_lock */
    struct ticket_slot *slots;
    uint32_t next_slot;
    struct client_session clients[CLIENT_SESSIONS]; /* under client_lock */
};

/*
 * One lock for every context's tickets, one for every context's kept sessions: contexts are a
 * few per process (the current one, and older ones until their last connection closes), and a
 * fork child must be able to re-create them (mt_tls_resumption_after_fork_child).
 */
static pthread_mutex_t ticket_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_mutex_t client_lock = PTHREAD_MUTEX_INITIALIZER;

void mt_tls_resumption_after_fork_child(void)
{
    pthread_mutex_init(&ticket_lock, NULL);
    pthread_mutex_init(&client_lock, NULL);
}

long long mt_tls_resumption_now_ms(void)
{
    struct timespec now;
    clock_gettime(CLOCK_BOOTTIME, &now);
    return (long long)now.tv_sec * 1000 + now.tv_nsec / 1000000;
}

static bool random_bytes(void *buffer, size_t length)
{
    unsigned char *bytes = buffer;
    while (length > 0) {
        ssize_t n = getrandom(bytes, length, 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return false;
        bytes += n;
        length -= (size_t)n;
    }
    return true;
}

MT_RESULT mt_tls_resumption_new(unsigned lifetime_s, struct mt_tls_resumption **out)
{
    MT_ENSURE_REF(out);
    MT_ENSURE(lifetime_s > 0, MT_ERR_INVALID_ARGUMENT);
    struct mt_tls_resumption *resumption = calloc(1, sizeof(*resumption));
    MT_ENSURE(resumption != NULL, MT_ERR_NO_MEMORY);
    resumption->lifetime_s = lifetime_s;
    *out = resumption;
    return MT_OK_RESULT;
}

/*
 * With ticket_lock held: the context's ticket key, made with its server half
 * (mt_tls_resumption_prepare_server) or at the latest at its first ticket. A process that is only
 * ever a client never needs one, and making it with the context cost every process start two
 * locked secret mappings, a getrandom and an AES key schedule (about ten system calls). The key
 * is as random and as private as before; only when it is made has moved.
 */
static bool ticket_key_ready(struct mt_tls_resumption *resumption)
{
    if (resumption->ticket_key != NULL)
        return true;
    struct ticket_key *made = NULL;
    unsigned char *key = NULL;
    bool ready = false;
    if (!mt_result_is_ok(mt_secret_alloc(sizeof(*made), (void **)&made)))
        goto out;
    if (wc_AesInit(&made->aes, NULL, INVALID_DEVID) != 0) {
        mt_secret_free(made);
        made = NULL;
        goto out;
    }
    if (!mt_result_is_ok(mt_secret_alloc(TICKET_KEY_SIZE, (void **)&key)) ||
        !random_bytes(key, TICKET_KEY_SIZE) ||
        wc_AesGcmSetKey(&made->aes, key, TICKET_KEY_SIZE) != 0)
        goto out;
    resumption->ticket_key = made;
    made = NULL;
    ready = true;
out:
    mt_secret_free(key);
    if (made != NULL) {
        wc_AesFree(&made->aes);
        mt_secret_free(made);
    }
    return ready;
}

MT_RESULT mt_tls_resumption_prepare_server(struct mt_tls_resumption *resumption)
{
    pthread_mutex_lock(&ticket_lock);
    bool ready = ticket_key_ready(resumption);
    pthread_mutex_unlock(&ticket_lock);
    MT_ENSURE(ready, MT_ERR_CRYPTO);
    return MT_OK_RESULT;
}

void mt_tls_resumption_free(struct mt_tls_resumption *resumption)
{
    if (resumption == NULL)
        return;
    if (resumption->ticket_key != NULL) {
        wc_AesFree(&resumption->ticket_key->aes);
        mt_secret_free(resumption->ticket_key);
    }
    if (resumption->slots != NULL)
        for (size_t i = 0; i < TICKET_SLOTS; i++)
            free(resumption->slots[i].peer_id);
    free(resumption->slots);
    for (size_t i = 0; i < CLIENT_SESSIONS; i++) {
        wolfSSL_SESSION_free(resumption->clients[i].session);
        free(resumption->clients[i].peer_id);
    }
    free(resumption);
}

unsigned mt_tls_resumption_lifetime(const struct mt_tls_resumption *resumption)
{
    return resumption->lifetime_s;
}

/* ---- server: tickets ------------------------------------------------------------------------ */

static uint32_t slot_index(const unsigned char name[WOLFSSL_TICKET_NAME_SZ])
{
    return ((uint32_t)name[0] << 24 | (uint32_t)name[1] << 16 | (uint32_t)name[2] << 8 |
            (uint32_t)name[3]) %
           TICKET_SLOTS;
}

/*
 * With ticket_lock held: the slot a resumed connection's new ticket takes (its ticket's own,
 * while it still binds that ticket and the same peer: a slot is only ever renewed for the
 * identity it binds), or the oldest one.
 */
static struct ticket_slot *slot_for(struct mt_tls_resumption *resumption, const char *peer_id,
                                    const unsigned char *renewed, bool *reused)
{
    if (renewed != NULL) {
        struct ticket_slot *slot = &resumption->slots[slot_index(renewed)];
        if (slot->peer_id != NULL && memcmp(slot->name, renewed, WOLFSSL_TICKET_NAME_SZ) == 0 &&
            strcmp(slot->peer_id, peer_id) == 0) {
            *reused = true;
            return slot;
        }
    }
    *reused = false;
    uint32_t index = resumption->next_slot;
    resumption->next_slot = (index + 1) % TICKET_SLOTS;
    return &resumption->slots[index];
}

bool mt_tls_ticket_seal(struct mt_tls_resumption *resumption, const char *peer_id,
                        long long expires_ms, const unsigned char *renewed,
                        unsigned char name[WOLFSSL_TICKET_NAME_SZ],
                        unsigned char iv[WOLFSSL_TICKET_IV_SZ],
                        unsigned char mac[WOLFSSL_TICKET_MAC_SZ], unsigned char *ticket,
                        size_t length)
{
    if (peer_id == NULL || peer_id[0] == '\0' || length > UINT32_MAX)
        return false;
    char *bound = strdup(peer_id);
    if (bound == NULL)
        return false;
    bool sealed = false;
    pthread_mutex_lock(&ticket_lock);
    if (!ticket_key_ready(resumption))
        goto out;
    if (resumption->slots == NULL)
        resumption->slots = calloc(TICKET_SLOTS, sizeof(*resumption->slots));
    if (resumption->slots == NULL)
        goto out;
    bool reused = false;
    struct ticket_slot *slot = slot_for(resumption, peer_id, renewed, &reused);
    memset(iv, 0, WOLFSSL_TICKET_IV_SZ);
    memset(mac, 0, WOLFSSL_TICKET_MAC_SZ);
    if (reused) {
        memcpy(name, slot->name, WOLFSSL_TICKET_NAME_SZ);
    } else {
        uint32_t index = (uint32_t)(slot - resumption->slots);
        name[0] = (unsigned char)(index >> 24);
        name[1] = (unsigned char)(index >> 16);
        name[2] = (unsigned char)(index >> 8);
        name[3] = (unsigned char)index;
        if (!random_bytes(name + 4, WOLFSSL_TICKET_NAME_SZ - 4))
            goto out;
    }
    if (!random_bytes(iv, GCM_NONCE_SIZE))
        goto out;
    /* The name is authenticated: a ticket cannot be moved to another client's binding. */
    if (wc_AesGcmEncrypt(&resumption->ticket_key->aes, ticket, ticket, (word32)length, iv,
                         GCM_NONCE_SIZE, mac, GCM_TAG_SIZE, name, WOLFSSL_TICKET_NAME_SZ) != 0)
        goto out;
    if (!reused) {
        free(slot->peer_id); /* the oldest ticket is forgotten */
        memcpy(slot->name, name, WOLFSSL_TICKET_NAME_SZ);
        slot->peer_id = bound;
        slot->expires_ms = expires_ms;
        bound = NULL;
    }
    /* A renewed slot keeps its binding and expiry: the same client, the same full handshake. */
    slot->length = length;
    sealed = true;
out:
    pthread_mutex_unlock(&ticket_lock);
    free(bound);
    return sealed;
}

bool mt_tls_ticket_open(struct mt_tls_resumption *resumption,
                        const unsigned char name[WOLFSSL_TICKET_NAME_SZ],
                        const unsigned char iv[WOLFSSL_TICKET_IV_SZ],
                        const unsigned char mac[WOLFSSL_TICKET_MAC_SZ], unsigned char *ticket,
                        size_t length, char *peer_id, size_t capacity, long long *expires_ms)
{
    if (length > UINT32_MAX || capacity == 0)
        return false;
    bool opened = false;
    pthread_mutex_lock(&ticket_lock);
    const struct ticket_slot *slot =
        resumption->slots != NULL ? &resumption->slots[slot_index(name)] : NULL;
    /* The length comes from the ticket, unauthenticated: the tag lies that far in. */
    /* No key yet: this context never sealed a ticket, so none can be its. */
    if (resumption->ticket_key == NULL || slot == NULL || slot->peer_id == NULL ||
        slot->length != length || memcmp(slot->name, name, WOLFSSL_TICKET_NAME_SZ) != 0 ||
        mt_tls_resumption_now_ms() >= slot->expires_ms || strlen(slot->peer_id) >= capacity)
        goto out;
    if (wc_AesGcmDecrypt(&resumption->ticket_key->aes, ticket, ticket, (word32)length, iv,
                         GCM_NONCE_SIZE, mac, GCM_TAG_SIZE, name, WOLFSSL_TICKET_NAME_SZ) != 0)
        goto out;
    strcpy(peer_id, slot->peer_id);
    *expires_ms = slot->expires_ms;
    opened = true;
out:
    pthread_mutex_unlock(&ticket_lock);
    return opened;
}

/* ---- client: sessions by destination -------------------------------------------------------- */

static void client_clear(struct client_session *entry)
{
    wolfSSL_SESSION_free(entry->session);
    free(entry->peer_id);
    memset(entry, 0, sizeof(*entry));
}

/* With client_lock held: the entry for destination, or NULL. */
static struct client_session *client_find(struct mt_tls_resumption *resumption,
                                          const unsigned char *destination, size_t length)
{
    for (size_t i = 0; i < CLIENT_SESSIONS; i++) {
        struct client_session *entry = &resumption->clients[i];
        if (entry->destination_length == length &&
            memcmp(entry->destination, destination, length) == 0)
            return entry;
    }
    return NULL;
}

/* With client_lock held: where to keep a new destination (a free, expired or the LRU entry). */
static struct client_session *client_slot(struct mt_tls_resumption *resumption, long long now)
{
    struct client_session *oldest = &resumption->clients[0];
    for (size_t i = 0; i < CLIENT_SESSIONS; i++) {
        struct client_session *entry = &resumption->clients[i];
        if (entry->destination_length == 0 || entry->expires_ms <= now)
            return entry;
        if (entry->used_ms < oldest->used_ms)
            oldest = entry;
    }
    return oldest;
}

void mt_tls_client_keep(struct mt_tls_resumption *resumption, const unsigned char *destination,
                        size_t destination_length, WOLFSSL *ssl, const char *peer_id,
                        long long expires_ms)
{
    if (destination_length == 0 || destination_length > MT_TLS_DESTINATION_MAX)
        return;
    /* A copy: ssl's own session changes if another ticket arrives on this connection. */
    WOLFSSL_SESSION *current = wolfSSL_get1_session(ssl);
    WOLFSSL_SESSION *copy = current != NULL ? wolfSSL_SESSION_dup(current) : NULL;
    wolfSSL_SESSION_free(current);
    char *id = strdup(peer_id);
    if (copy == NULL || id == NULL) {
        wolfSSL_SESSION_free(copy);
        free(id);
        return;
    }
    long long now = mt_tls_resumption_now_ms();
    pthread_mutex_lock(&client_lock);
    struct client_session *entry = client_find(resumption, destination, destination_length);
    if (entry == NULL)
        entry = client_slot(resumption, now);
    client_clear(entry);
    memcpy(entry->destination, destination, destination_length);
    entry->destination_length = destination_length;
    entry->session = copy;
    entry->peer_id = id;
    entry->expires_ms = expires_ms;
    entry->used_ms = now;
    pthread_mutex_unlock(&client_lock);
}

bool mt_tls_client_offer(struct mt_tls_resumption *resumption, const unsigned char *destination,
                         size_t destination_length, WOLFSSL *ssl,
                         bool (*admit)(void *argument, const char *peer_id), void *argument,
                         char *peer_id, size_t capacity, long long *expires_ms)
{
    bool offered = false;
    long long now = mt_tls_resumption_now_ms();
    pthread_mutex_lock(&client_lock);
    struct client_session *entry = client_find(resumption, destination, destination_length);
    if (entry == NULL)
        goto out;
    if (now >= entry->expires_ms) {
        client_clear(entry);
        goto out;
    }
    if (strlen(entry->peer_id) >= capacity || !admit(argument, entry->peer_id))
        goto out;
    /*
     * ssl gets a copy of its own: wolfSSL 5.9.2 does not copy a session it is given (5.5.4 did)
     * but shares it, and writes the connection's next ticket into it, under any other thread
     * whose connection was given the same one.
     */
    WOLFSSL_SESSION *copy = wolfSSL_SESSION_dup(entry->session);
    bool set = copy != NULL && wolfSSL_set_session(ssl, copy) == WOLFSSL_SUCCESS;
    wolfSSL_SESSION_free(copy); /* ssl holds its own reference, or its own copy */
    if (!set) {
        client_clear(entry); /* wolfSSL's own expiry, or a session it cannot use */
        goto out;
    }
    strcpy(peer_id, entry->peer_id);
    *expires_ms = entry->expires_ms;
    entry->used_ms = now;
    offered = true;
out:
    pthread_mutex_unlock(&client_lock);
    return offered;
}

void mt_tls_client_forget(struct mt_tls_resumption *resumption, const unsigned char *destination,
                          size_t destination_length)
{
    pthread_mutex_lock(&client_lock);
    struct client_session *entry = client_find(resumption, destination, destination_length);
    if (entry != NULL)
        client_clear(entry);
    pthread_mutex_unlock(&client_lock);
}
