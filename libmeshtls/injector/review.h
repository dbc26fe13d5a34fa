/*
 * The AdmissionReview (admission.k8s.io/v1) exchange of the mutating webhook: a request in, the
 * HTTP answer out.
 *
 *   request                                                  HTTP  response
 *   not JSON, not an AdmissionReview v1, no request.uid,      400   text naming what is wrong
 *   request.kind not a Pod, request.object not a Pod
 *   a Pod marked meshtls.io/injected: "true"                  200   allowed, no patch
 *   meshtls.io/inject: disabled, or absent with the default   200   allowed, no patch
 *   disabled, or an operation other than CREATE
 *   meshtls.io/inject: enabled, or absent with the default    200   allowed, JSONPatch (base64)
 *   enabled
 *   a pod to inject whose annotations or containers cannot    200   denied (allowed: false),
 *   be meshed (patch.h), or an unknown meshtls.io/inject               status.message says why
 *
 * A pod that asked for the mesh is denied rather than admitted unmeshed: it would otherwise run
 * in plaintext with nobody told.
 */
#ifndef MT_INJECTOR_REVIEW_H
#define MT_INJECTOR_REVIEW_H

#include <stdbool.h>
#include <stddef.h>

#include "../util/text.h"

/* An HTTP answer: status, content type and a body the caller frees. */
struct mt_injector_answer {
    unsigned status;
    const char *content_type;
    char *body;
    size_t length;
};

/*
 * Answers the AdmissionReview in body (length bytes, not NUL-terminated). inject_default is the
 * decision for a pod without meshtls.io/inject (the namespace selected it). Fails only for want
 * of memory; every other outcome is an answer.
 */
MT_RESULT mt_injector_review_answer(const char *body, size_t length, bool inject_default,
                                    struct mt_injector_answer *answer);

/* A plain-text answer of status with message and a newline (body allocated; NULL on no memory). */
MT_RESULT mt_injector_answer_text(unsigned status, const char *message,
                                  struct mt_injector_answer *answer);

void mt_injector_answer_free(struct mt_injector_answer *answer);

#endif
