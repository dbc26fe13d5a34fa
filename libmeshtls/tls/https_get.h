/*
 * One HTTPS GET with a deadline, for the agent's questions to the kubelet: connect to a numeric
 * address, TLS 1.3 with the server verified against a CA file and its address, one request
 * ("Connection: close"), one response read whole within a size cap.
 *
 *     struct mt_https_response response;
 *     MT_GUARD(mt_https_get(&(struct mt_https_request){.url = "https://10.0.0.4:10250/pods",
 *                           .ca_file = ca, .authorization = "Bearer ...", .timeout_ms = 3000,
 *                           .body_max = 8 << 20}, &response, &reason));
 *     ... response.status, response.body[0 .. response.body_length) ...
 *     mt_https_response_free(&response);
 *
 * The URL's host must be an IP address (v4, or v6 in brackets): no name is looked up, because a
 * resolver has no deadline this code could hold it to. Failures come back with the reason in
 * reason ("connecting to 10.0.0.4:10250: connection refused"); an HTTP status other than 200 is
 * not a failure here: the caller reads response.status.
 */
#ifndef MT_TLS_HTTPS_GET_H
#define MT_TLS_HTTPS_GET_H

#include <stddef.h>

#include "../util/result.h"
#include "../util/text.h"

struct mt_https_request {
    const char *url;           /* https://ADDRESS[:PORT]/PATH */
    const char *ca_file;       /* PEM certificates the server's chain must lead to */
    const char *authorization; /* the Authorization header's value; NULL: none */
    int timeout_ms;            /* for the whole exchange */
    size_t body_max;           /* a longer body fails with MT_ERR_TOO_LONG */
};

struct mt_https_response {
    int status;
    char *body; /* NUL-terminated after body_length bytes; NULL before a response */
    size_t body_length;
};

MT_RESULT mt_https_get(const struct mt_https_request *request, struct mt_https_response *response,
                       struct mt_text *reason);

void mt_https_response_free(struct mt_https_response *response);

/*
 * The status and body of a whole HTTP/1.1 response in data[0 .. length) (the connection closed
 * after it): a Content-Length body, a chunked one, or everything after the headers. Pure, for
 * tests and a fuzz target; body points into data (a chunked body is joined in place, so data is
 * written). Fails with MT_ERR_PROTO_MALFORMED, or MT_ERR_PROTO_TRUNCATED when data ends early.
 */
MT_RESULT mt_https_parse_response(char *data, size_t length, int *status, char **body,
                                  size_t *body_length);

#endif
