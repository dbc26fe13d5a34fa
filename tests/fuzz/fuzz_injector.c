/*
 * libFuzzer target for meshtls-injector's AdmissionReview exchange (injector/review.c, with the
 * patch builder and the probe ports behind it).
 *
 * Beyond "no crash, no leak": every body gets an answer, 400 (a review it could not read) or
 * 200 with an AdmissionReview whose response carries the request's uid, whichever the default
 * for pods without the annotation.
 */
#include <json-c/json.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "injector/review.h"
#include "util/log.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void require(bool condition)
{
    if (!condition)
        abort();
}

static void check_answer(const struct mt_injector_answer *answer)
{
    require(answer->body != NULL && answer->length == strlen(answer->body));
    if (answer->status == 400) {
        require(strcmp(answer->content_type, "text/plain") == 0);
        return;
    }
    require(answer->status == 200);
    struct json_object *review = json_tokener_parse(answer->body);
    require(review != NULL);
    struct json_object *response;
    struct json_object *uid;
    struct json_object *allowed;
    require(json_object_object_get_ex(review, "response", &response) &&
            json_object_object_get_ex(response, "uid", &uid) &&
            json_object_is_type(uid, json_type_string) && json_object_get_string_len(uid) > 0 &&
            json_object_object_get_ex(response, "allowed", &allowed) &&
            json_object_is_type(allowed, json_type_boolean));
    json_object_put(review);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    mt_log_set_level(MT_LOG_ERROR);
    for (int inject_default = 0; inject_default <= 1; inject_default++) {
        struct mt_injector_answer answer;
        require(mt_result_is_ok(
            mt_injector_review_answer((const char *)data, size, inject_default == 1, &answer)));
        check_answer(&answer);
        mt_injector_answer_free(&answer);
    }
    return 0;
}
