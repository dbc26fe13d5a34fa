/*
 * The webhook's HTTPS endpoint: POST /mutate answers AdmissionReviews (review.h), GET /healthz
 * answers the kubelet's probes.
 *
 *   request                               answer
 *   POST /mutate, body <= 4 MiB           review.h's answer
 *   POST /mutate, body larger             413, nothing of it parsed
 *   GET|HEAD /healthz                     200 "ok"
 *   another method on either path         405
 *   another path                          404
 *
 * The certificate and key are files (a cert-manager Secret mounted in the pod) read again when
 * either changes: the new pair is loaded and checked first, then takes over the listening
 * socket; connections already open finish on the old one. A pair that does not load is logged
 * and the old one kept.
 */
#ifndef MT_INJECTOR_SERVER_H
#define MT_INJECTOR_SERVER_H

#include <stdbool.h>

#include "../util/text.h"

#define MT_INJECTOR_BODY_MAX (4 * 1024 * 1024)

struct mt_injector_server_options {
    const char *listen_address; /* numeric host:port, e.g. 0.0.0.0:8443 or [::]:8443 */
    const char *cert_path;      /* PEM certificate chain, leaf first */
    const char *key_path;       /* PEM private key */
    bool inject_default;        /* for pods without meshtls.io/inject */
};

struct mt_injector_server;

/*
 * Reads the certificate and key and serves on the address. On failure reason names the file or
 * address and what is wrong. The paths in options must outlive the server.
 */
MT_RESULT mt_injector_server_start(const struct mt_injector_server_options *options,
                                   struct mt_injector_server **server, struct mt_text *reason);

/*
 * Loads the certificate and key again if either file changed since last read, logging the
 * outcome. Fails (reason says why) only when the server could serve with neither the new nor the
 * old pair: the caller should then exit and be restarted.
 */
MT_RESULT mt_injector_server_reload(struct mt_injector_server *server, struct mt_text *reason);

void mt_injector_server_stop(struct mt_injector_server *server);

#endif
