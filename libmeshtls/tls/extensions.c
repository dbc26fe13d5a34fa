/*
 * What a finished handshake leaves in wolfSSL that an established connection never reads again:
 * the pre_shared_key extension (the offered or accepted ticket and its binder, ~380 B per
 * connection) and psk_key_exchange_modes. wolfSSL keeps every extension until wolfSSL_free when
 * ALPN or SNI is compiled in (FreeHandshakeResources frees only a few, so that ALPN and SNI can be
 * asked for later); on a process holding thousands of idle connections, these are a tenth of
 * each one's heap.
 *
 * Only these two go: wolfSSL 5.9.2 reads them while building or reading a ClientHello or
 * ServerHello (tls13.c: SetupPskKey, WritePSKBinders, DoPreSharedKeys, CheckPreSharedKeys),
 * never after; a NewSessionTicket, a KeyUpdate and the session export of the handover
 * (handover.c) do not touch them, and an imported session has none. ALPN stays: it is asked for
 * after the handshake. Must never free an extension a later step may read.
 *
 * Needs the place of WOLFSSL.extensions and wolfSSL's internal TLSX_Remove, which the bundled
 * build measures and links statically (packaging/wolfssl/build.sh); with another wolfSSL the
 * extensions are kept.
 */
#include "internal.h"

#if __has_include(<wolfssl/meshtls_secrets.h>)
#include <wolfssl/meshtls_secrets.h>
#endif

#if defined(MT_WOLFSSL_EXTENSIONS_OFFSET) && defined(MT_WOLFSSL_TLSX_PRE_SHARED_KEY) &&            \
    defined(MT_WOLFSSL_TLSX_PSK_KEY_EXCHANGE_MODES)

/* wolfssl/internal.h (not installed): WOLFSSL_LOCAL, reached through the static library. */
struct TLSX;
void TLSX_Remove(struct TLSX **list, int type, void *heap);

void mt_tls_forget_handshake_extensions(struct mt_tls_session *session)
{
    struct TLSX **extensions =
        (struct TLSX **)(void *)((unsigned char *)session->ssl + MT_WOLFSSL_EXTENSIONS_OFFSET);
    /* heap NULL: no static memory pool in this build, XFREE is free(). */
    TLSX_Remove(extensions, MT_WOLFSSL_TLSX_PRE_SHARED_KEY, NULL);
    TLSX_Remove(extensions, MT_WOLFSSL_TLSX_PSK_KEY_EXCHANGE_MODES, NULL);
}

#else

void mt_tls_forget_handshake_extensions(struct mt_tls_session *session)
{
    (void)session;
}

#endif
