/*
 * Reading members of untrusted JSON (json-c) by name and type: the Kubernetes objects the agent
 * reads from the kubelet and the API server, and the AdmissionReview the injector reads.
 *
 * Header only, for the programs that link json-c (the agent, the injector); the library never
 * includes it. A member that is absent or of another type reads as NULL, never as a value
 * converted from the wrong type.
 */
#ifndef MT_UTIL_JSON_MEMBER_H
#define MT_UTIL_JSON_MEMBER_H

#include <json-c/json.h>
#include <stddef.h>

/* The member of object named key when object is an object and the member has type; else NULL. */
static inline struct json_object *mt_json_member(struct json_object *object, const char *key,
                                                 enum json_type type)
{
    struct json_object *child = NULL;
    if (object == NULL || !json_object_is_type(object, json_type_object) ||
        !json_object_object_get_ex(object, key, &child) || !json_object_is_type(child, type))
        return NULL;
    return child;
}

/* The string member of object named key, or NULL. */
static inline const char *mt_json_string_member(struct json_object *object, const char *key)
{
    struct json_object *child = mt_json_member(object, key, json_type_string);
    return child != NULL ? json_object_get_string(child) : NULL;
}

#endif
