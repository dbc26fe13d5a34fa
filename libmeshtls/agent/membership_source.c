/*
 * The membership file read into entries, and each good load published as a sealed memfd
 * (membership_source.h, policy/membership.h).
 *
 * Owns the file's syntax, the tombstones and the publication of the file's entries united with
 * the Kubernetes API server's (kube_watch.h) when the agent has both. It must never publish a set
 * it has not read whole (a half-read file would call meshed destinations absent), never write into
 * a published set except its `superseded` word, and never hand out a descriptor that can write.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../config/internal.h"
#include "../config/reader.h"
#include "../util/log.h"
#include "../util/spiffe.h"
#include "membership_source.h"

#define COUNT_OF(array) (sizeof(array) / sizeof((array)[0]))
#define ENTRY_KEY_MAX 48

/* One entry of the file as read, before it becomes one layout entry per port range. */
struct file_entry {
    bool has_cidr;
    struct mt_cidr cidr;
    unsigned port_count; /* 0: every port */
    struct mt_port_range ports[MT_CONFIG_RULE_PORTS_MAX];
    char identity[MT_MEMBERSHIP_IDENTITY_MAX + 1];
};

struct load {
    struct mt_config_reader reader;
    const char *trust_domain;
    char entry_key[ENTRY_KEY_MAX];
    struct file_entry entry;
    struct mt_membership_entry *entries;
    size_t count;
};

static const char *member_key(const struct load *load, const char *member, char *key,
                              size_t capacity)
{
    snprintf(key, capacity, "%s.%s", load->entry_key, member);
    return key;
}

static MT_RESULT read_cidr(void *context, const config_setting_t *setting)
{
    struct load *load = context;
    char key[ENTRY_KEY_MAX + 8];
    MT_GUARD(mt_config_read_cidr(&load->reader, setting, member_key(load, "cidr", key, sizeof(key)),
                                 &load->entry.cidr));
    load->entry.has_cidr = true;
    return MT_OK_RESULT;
}

static MT_RESULT read_ports(void *context, const config_setting_t *setting)
{
    struct load *load = context;
    char key[ENTRY_KEY_MAX + 8];
    return mt_config_read_port_list(
        &load->reader, setting, member_key(load, "ports", key, sizeof(key)), false,
        load->entry.ports, MT_CONFIG_RULE_PORTS_MAX, &load->entry.port_count);
}

// "ns/shop/sa/*" below the trust domain, or a whole "spiffe://..." pattern.
static MT_RESULT read_id(void *context, const config_setting_t *setting)
{
    struct load *load = context;
    char key[ENTRY_KEY_MAX + 8];
    member_key(load, "id", key, sizeof(key));
    const char *value;
    MT_GUARD(mt_config_read_string(&load->reader, setting, key,
                                   "an identity path such as \"ns/shop/sa/*\"", &value));
    char *pattern = load->entry.identity;
    int length = strncmp(value, "spiffe://", 9) == 0
                     ? snprintf(pattern, sizeof(load->entry.identity), "%s", value)
                     : snprintf(pattern, sizeof(load->entry.identity), "spiffe://%s/%s",
                                load->trust_domain, value);
    if (length < 0 || (size_t)length >= sizeof(load->entry.identity) ||
        !mt_spiffe_is_valid_pattern(pattern, (size_t)length)) {
        pattern[0] = '\0';
        return mt_config_reader_fail_value(&load->reader, setting, key, value,
                                           "is not an identity pattern (such as \"ns/shop/sa/*\" "
                                           "or \"spiffe://%s/ns/shop/sa/api\")",
                                           load->trust_domain);
    }
    return MT_OK_RESULT;
}

static const struct mt_config_key entry_keys[] = {
    {"cidr", read_cidr},
    {"ports", read_ports},
    {"id", read_id},
};

static MT_RESULT append_entries(struct load *load, const config_setting_t *group)
{
    const struct file_entry *entry = &load->entry;
    struct mt_port_range every_port = {1, 65535};
    const struct mt_port_range *ranges = entry->port_count > 0 ? entry->ports : &every_port;
    unsigned range_count = entry->port_count > 0 ? entry->port_count : 1;
    if (load->count + range_count > MT_MEMBERSHIP_ENTRIES_MAX - MT_MEMBERSHIP_SOURCE_TOMBSTONES_MAX)
        return mt_config_reader_fail(&load->reader, group, load->entry_key,
                                     "too many entries (at most %u address and port range pairs)",
                                     MT_MEMBERSHIP_ENTRIES_MAX -
                                         MT_MEMBERSHIP_SOURCE_TOMBSTONES_MAX);
    struct mt_membership_entry *grown =
        realloc(load->entries, (load->count + range_count) * sizeof(*grown));
    MT_ENSURE(grown != NULL, MT_ERR_NO_MEMORY);
    load->entries = grown;
    unsigned family =
        entry->cidr.family == AF_INET ? MT_MEMBERSHIP_FAMILY_IPV4 : MT_MEMBERSHIP_FAMILY_IPV6;
    for (unsigned r = 0; r < range_count; r++) {
        bool filled = mt_membership_entry_fill(
            &load->entries[load->count], MT_MEMBERSHIP_STATE_LIVE, family, entry->cidr.address,
            entry->cidr.prefix_length, ranges[r].first, ranges[r].last, entry->identity);
        MT_ENSURE(filled, MT_ERR_CONFIG);
        load->count++;
    }
    return MT_OK_RESULT;
}

static MT_RESULT read_membership(void *context, const config_setting_t *setting)
{
    struct load *load = context;
    const struct mt_config_reader *reader = &load->reader;
    if (config_setting_is_list(setting) == CONFIG_FALSE)
        return mt_config_reader_fail_type(
            reader, setting, "membership",
            "a list of groups (membership = ({ cidr = \"10.1.0.0/16\"; ports = [8080]; });)");
    int length = config_setting_length(setting);
    for (int i = 0; i < length; i++) {
        const config_setting_t *group = config_setting_get_elem(setting, (unsigned)i);
        snprintf(load->entry_key, sizeof(load->entry_key), "membership[%d]", i);
        if (config_setting_is_group(group) == CONFIG_FALSE)
            return mt_config_reader_fail_type(reader, group, load->entry_key,
                                              "a group ({ cidr = \"10.1.0.0/16\"; })");
        memset(&load->entry, 0, sizeof(load->entry));
        MT_GUARD(mt_config_read_group(reader, group, load->entry_key, entry_keys,
                                      COUNT_OF(entry_keys), load));
        if (!load->entry.has_cidr)
            return mt_config_reader_fail_missing(reader, group, load->entry_key, "cidr",
                                                 "an IP address or CIDR, such as \"10.1.0.0/16\"");
        MT_GUARD(append_entries(load, group));
    }
    return MT_OK_RESULT;
}

static const struct mt_config_key top_level_keys[] = {
    {"membership", read_membership},
};

/* Reads the file whole into *entries (the caller frees them); nothing on error. */
static MT_RESULT load_file(const struct mt_membership_source *source,
                           struct mt_membership_entry **entries, size_t *count,
                           struct mt_text *reason)
{
    struct load load = {.reader = {.path = source->path, .reason = reason},
                        .trust_domain = source->trust_domain};
    config_t parsed;
    mt_result result = mt_config_read_file(&load.reader, &parsed);
    if (mt_result_is_ok(result))
        result = mt_config_read_group(&load.reader, config_root_setting(&parsed), NULL,
                                      top_level_keys, COUNT_OF(top_level_keys), &load);
    config_destroy(&parsed);
    if (!mt_result_is_ok(result)) {
        free(load.entries);
        return result;
    }
    *entries = load.entries;
    *count = load.count;
    return MT_OK_RESULT;
}

/* The order of places (family, prefix, ports, address): two entries compare equal exactly when
 * they name the same place, whatever their state and identity. */
static int place_compare(const struct mt_membership_entry *a, const struct mt_membership_entry *b)
{
    if (a->family != b->family)
        return a->family < b->family ? -1 : 1;
    if (a->prefix_length != b->prefix_length)
        return a->prefix_length < b->prefix_length ? -1 : 1;
    if (a->port_first != b->port_first)
        return a->port_first < b->port_first ? -1 : 1;
    if (a->port_last != b->port_last)
        return a->port_last < b->port_last ? -1 : 1;
    return memcmp(a->address, b->address, sizeof(a->address));
}

/* Places, then their order in the one array they point into: the first of a place sorts first. */
static int place_pointer_compare(const void *left, const void *right)
{
    const struct mt_membership_entry *const *a = left;
    const struct mt_membership_entry *const *b = right;
    int by_place = place_compare(*a, *b);
    if (by_place != 0)
        return by_place;
    return *a < *b ? -1 : (*a > *b ? 1 : 0);
}

/*
 * Pointers to entries sorted by place, so that a reload of 10 000+ entries looks each place up
 * in O(log n) rather than scanning (a scan per entry is O(n²): seconds on the event loop).
 * NULL when out of memory.
 */
static const struct mt_membership_entry **places_sorted(const struct mt_membership_entry *entries,
                                                        size_t count)
{
    const struct mt_membership_entry **sorted = malloc((count > 0 ? count : 1) * sizeof(*sorted));
    if (sorted == NULL)
        return NULL;
    for (size_t i = 0; i < count; i++)
        sorted[i] = &entries[i];
    qsort(sorted, count, sizeof(*sorted), place_pointer_compare);
    return sorted;
}

/* The first of the entries of entry's place in sorted, or NULL when there is none. */
static const struct mt_membership_entry *
places_first(const struct mt_membership_entry *const *sorted, size_t count,
             const struct mt_membership_entry *entry)
{
    size_t low = 0;
    size_t high = count;
    while (low < high) {
        size_t middle = low + (high - low) / 2;
        if (place_compare(sorted[middle], entry) < 0)
            low = middle + 1;
        else
            high = middle;
    }
    return low < count && place_compare(sorted[low], entry) == 0 ? sorted[low] : NULL;
}

/*
 * The tombstones after live became next: the old ones still absent from next, then what live had
 * and next has not (a place live listed twice once, as its first entry), the oldest dropped
 * beyond MT_MEMBERSHIP_SOURCE_TOMBSTONES_MAX.
 */
static MT_RESULT update_tombstones(struct mt_membership_source *source,
                                   const struct mt_membership_entry *next, size_t next_count)
{
    size_t capacity = source->removed_count + source->live_count;
    struct mt_membership_entry *removed = malloc((capacity > 0 ? capacity : 1) * sizeof(*removed));
    const struct mt_membership_entry **next_places = places_sorted(next, next_count);
    const struct mt_membership_entry **live_places =
        places_sorted(source->live, source->live_count);
    const struct mt_membership_entry **old_places = NULL;
    mt_result result = mt_result_of(MT_ERR_NO_MEMORY);
    if (removed == NULL || next_places == NULL || live_places == NULL)
        goto out;
    size_t count = 0;
    for (size_t i = 0; i < source->removed_count; i++) {
        if (places_first(next_places, next_count, &source->removed[i]) == NULL)
            removed[count++] = source->removed[i];
    }
    size_t old_count = count;
    old_places = places_sorted(removed, old_count);
    if (old_places == NULL)
        goto out;
    for (size_t i = 0; i < source->live_count; i++) {
        const struct mt_membership_entry *gone = &source->live[i];
        if (places_first(next_places, next_count, gone) != NULL ||
            places_first(old_places, old_count, gone) != NULL ||
            places_first(live_places, source->live_count, gone) != gone)
            continue;
        removed[count] = *gone;
        removed[count].state = MT_MEMBERSHIP_STATE_REMOVED;
        count++;
    }
    size_t dropped = count > MT_MEMBERSHIP_SOURCE_TOMBSTONES_MAX
                         ? count - MT_MEMBERSHIP_SOURCE_TOMBSTONES_MAX
                         : 0;
    /* Only when some are dropped: valgrind's checked memmove reports a copy onto itself. */
    if (dropped > 0)
        memmove(removed, removed + dropped, (count - dropped) * sizeof(*removed));
    free(source->removed);
    source->removed = removed;
    source->removed_count = count - dropped;
    removed = NULL;
    result = MT_OK_RESULT;
out:
    free(removed);
    free(next_places);
    free(live_places);
    free(old_places);
    return result;
}

/* A host entry on its way into the sorted part of a set, with its place among the entries given
 * so that entries with the same key keep their order (qsort is not stable). */
struct host_place {
    const struct mt_membership_entry *entry;
    size_t order;
};

static int host_place_compare(const void *left, const void *right)
{
    const struct host_place *a = left;
    const struct host_place *b = right;
    int by_key = mt_membership_host_compare(a->entry, b->entry);
    if (by_key != 0)
        return by_key;
    return a->order < b->order ? -1 : (a->order > b->order ? 1 : 0);
}

/*
 * Orders live then removed as version 2 wants them (policy/membership.h): CIDR entries as given,
 * then host entries sorted by family, address and first port. ordered and hosts have room for
 * every entry. Returns the index of the first host entry.
 */
static uint32_t order_entries(const struct mt_membership_source *source,
                              const struct mt_membership_entry **ordered, struct host_place *hosts)
{
    const struct mt_membership_entry *parts[2] = {source->live, source->removed};
    size_t part_counts[2] = {source->live_count, source->removed_count};
    size_t cidr_count = 0;
    size_t host_count = 0;
    size_t order = 0;
    for (size_t part = 0; part < 2; part++) {
        for (size_t i = 0; i < part_counts[part]; i++, order++) {
            const struct mt_membership_entry *entry = &parts[part][i];
            if (mt_membership_entry_is_host(entry))
                hosts[host_count++] = (struct host_place){entry, order};
            else
                ordered[cidr_count++] = entry;
        }
    }
    qsort(hosts, host_count, sizeof(*hosts), host_place_compare);
    for (size_t i = 0; i < host_count; i++)
        ordered[cidr_count + i] = hosts[i].entry;
    return (uint32_t)cidr_count;
}

/* Writes a new generation of live + tombstones into a new sealed memfd and makes it current. */
static MT_RESULT publish(struct mt_membership_source *source, struct mt_text *reason)
{
    size_t count = source->live_count + source->removed_count;
    if (count > MT_MEMBERSHIP_ENTRIES_MAX)
        return mt_result_explain(reason, MT_ERR_MEMBERSHIP,
                                 "%zu membership entries, more than a set holds (%u)", count,
                                 MT_MEMBERSHIP_ENTRIES_MAX);
    struct host_place *hosts = malloc((count > 0 ? count : 1) * sizeof(*hosts));
    const struct mt_membership_entry **ordered = malloc((count > 0 ? count : 1) * sizeof(*ordered));
    uint8_t *mapping = MAP_FAILED;
    size_t size = 0;
    int fd = -1;
    mt_result result = mt_result_of(MT_ERR_NO_MEMORY);
    if (hosts == NULL || ordered == NULL)
        goto out;
    uint32_t host_first = order_entries(source, ordered, hosts);
    size = mt_membership_set_size(ordered, count);
    result = MT_OK_RESULT;
    fd = memfd_create("meshtls-membership", MFD_CLOEXEC | MFD_ALLOW_SEALING);
    if (fd < 0) {
        result = mt_result_explain(reason, MT_ERR_IO, "memfd_create: %s", strerror(errno));
        goto out;
    }
    if (ftruncate(fd, (off_t)size) != 0) {
        result = mt_result_explain(reason, MT_ERR_IO, "ftruncate: %s", strerror(errno));
        goto out;
    }
    mapping = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (mapping == MAP_FAILED) {
        result = mt_result_explain(reason, MT_ERR_IO, "mmap: %s", strerror(errno));
        goto out;
    }
    uint64_t generation = source->generation + 1;
    mt_membership_set_write(
        mapping, generation,
        source->has_kube && !source->kube_complete ? 0u : MT_MEMBERSHIP_FLAG_COMPLETE, ordered,
        count, host_first);
    /* From here on only this mapping can write (for `superseded`): no reader can, nor resize. */
    if (fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_FUTURE_WRITE | F_SEAL_SEAL) !=
        0) {
        result = mt_result_explain(reason, MT_ERR_IO, "sealing the set: %s", strerror(errno));
        goto out;
    }
    if (source->published != NULL) {
        struct mt_membership_header *old = (struct mt_membership_header *)(void *)source->published;
        __atomic_store_n(&old->superseded, 1u, __ATOMIC_RELEASE);
        munmap(source->published, source->published_size);
        close(source->memfd);
    }
    source->generation = generation;
    source->memfd = fd;
    source->published = mapping;
    source->published_size = size;
    fd = -1;
    mapping = MAP_FAILED;
out:
    if (mapping != MAP_FAILED)
        munmap(mapping, size);
    if (fd >= 0)
        close(fd);
    free(hosts);
    free(ordered);
    return result;
}

static void read_signature(struct mt_membership_source *source)
{
    struct stat status;
    source->present = stat(source->path, &status) == 0;
    if (!source->present)
        return;
    source->device = status.st_dev;
    source->inode = status.st_ino;
    source->size = status.st_size;
    source->modified = status.st_mtim;
}

static bool signature_changed(const struct mt_membership_source *source)
{
    struct stat status;
    bool present = stat(source->path, &status) == 0;
    if (present != source->present)
        return true;
    return present &&
           (status.st_dev != source->device || status.st_ino != source->inode ||
            status.st_size != source->size || status.st_mtim.tv_sec != source->modified.tv_sec ||
            status.st_mtim.tv_nsec != source->modified.tv_nsec);
}

/*
 * Publishes next (taken over on success) as the live set of the next generation, with the
 * tombstones it leaves; on error nothing changes.
 */
static MT_RESULT replace_live(struct mt_membership_source *source, struct mt_membership_entry *next,
                              size_t next_count, struct mt_text *reason)
{
    struct mt_membership_entry *previous_removed = source->removed;
    size_t previous_removed_count = source->removed_count;
    struct mt_membership_entry *saved_removed =
        malloc((previous_removed_count > 0 ? previous_removed_count : 1) * sizeof(*saved_removed));
    mt_result result = mt_result_of(MT_ERR_NO_MEMORY);
    if (saved_removed == NULL)
        goto out;
    if (previous_removed_count > 0)
        memcpy(saved_removed, previous_removed, previous_removed_count * sizeof(*saved_removed));
    result = update_tombstones(source, next, next_count);
    if (!mt_result_is_ok(result))
        goto out;
    struct mt_membership_entry *previous_live = source->live;
    size_t previous_live_count = source->live_count;
    source->live = next;
    source->live_count = next_count;
    result = publish(source, reason);
    if (!mt_result_is_ok(result)) {
        /* Not published: the tombstones and entries stay those of the set readers have. */
        source->live = previous_live;
        source->live_count = previous_live_count;
        free(source->removed);
        source->removed = saved_removed;
        source->removed_count = previous_removed_count;
        saved_removed = NULL;
        goto out;
    }
    free(previous_live);
out:
    free(saved_removed);
    return result;
}

/* The file's entries, then the Kubernetes API server's, in one new array (*united). */
static MT_RESULT unite(const struct mt_membership_entry *file, size_t file_count,
                       const struct mt_membership_entry *kube, size_t kube_count,
                       struct mt_membership_entry **united, size_t *count, struct mt_text *reason)
{
    if (file_count + kube_count > MT_MEMBERSHIP_ENTRIES_MAX - MT_MEMBERSHIP_SOURCE_TOMBSTONES_MAX)
        return mt_result_explain(reason, MT_ERR_TOO_LONG,
                                 "%zu entries from the file and %zu from the Kubernetes API "
                                 "server are more than the %u a set holds",
                                 file_count, kube_count,
                                 MT_MEMBERSHIP_ENTRIES_MAX - MT_MEMBERSHIP_SOURCE_TOMBSTONES_MAX);
    size_t total = file_count + kube_count;
    struct mt_membership_entry *all = malloc((total > 0 ? total : 1) * sizeof(*all));
    MT_ENSURE(all != NULL, MT_ERR_NO_MEMORY);
    if (file_count > 0)
        memcpy(all, file, file_count * sizeof(*all));
    if (kube_count > 0)
        memcpy(all + file_count, kube, kube_count * sizeof(*all));
    *united = all;
    *count = total;
    return MT_OK_RESULT;
}

/* Loads the file and publishes it as the next generation; on error nothing changes. */
static MT_RESULT reload(struct mt_membership_source *source, struct mt_text *reason)
{
    struct mt_membership_entry *next = NULL;
    size_t next_count = 0;
    if (source->path[0] != '\0')
        MT_GUARD(load_file(source, &next, &next_count, reason));
    struct mt_membership_entry *united = NULL;
    size_t united_count = 0;
    mt_result result = unite(next, next_count, source->kube_live, source->kube_live_count, &united,
                             &united_count, reason);
    if (mt_result_is_ok(result))
        result = replace_live(source, united, united_count, reason);
    if (!mt_result_is_ok(result)) {
        free(united);
        free(next);
        return result;
    }
    free(source->file_live);
    source->file_live = next;
    source->file_live_count = next_count;
    return MT_OK_RESULT;
}

static MT_RESULT open_source(struct mt_membership_source *source, const char *path,
                             const char *trust_domain, long long now_ms, bool has_kube,
                             struct mt_text *reason)
{
    MT_ENSURE_REF(source);
    MT_ENSURE_REF(trust_domain);
    memset(source, 0, sizeof(*source));
    source->memfd = -1;
    source->has_kube = has_kube;
    if (path != NULL) {
        int length = snprintf(source->path, sizeof(source->path), "%s", path);
        MT_ENSURE(length > 0 && (size_t)length < sizeof(source->path), MT_ERR_TOO_LONG);
    }
    snprintf(source->trust_domain, sizeof(source->trust_domain), "%s", trust_domain);
    if (path != NULL)
        read_signature(source);
    source->next_poll_ms = now_ms + MT_MEMBERSHIP_SOURCE_POLL_MS;
    mt_result result = reload(source, reason);
    if (!mt_result_is_ok(result)) {
        mt_membership_source_close(source);
        return result;
    }
    return MT_OK_RESULT;
}

MT_RESULT mt_membership_source_open_kube(struct mt_membership_source *source, const char *path,
                                         const char *trust_domain, long long now_ms,
                                         struct mt_text *reason)
{
    return open_source(source, path, trust_domain, now_ms, true, reason);
}

MT_RESULT mt_membership_source_set_kube(struct mt_membership_source *source,
                                        struct mt_membership_entry *entries, size_t count,
                                        bool complete, struct mt_text *reason)
{
    MT_ENSURE_REF(source);
    MT_ENSURE(source->published != NULL && source->has_kube, MT_ERR_INVALID_ARGUMENT);
    struct mt_membership_entry *united = NULL;
    size_t united_count = 0;
    MT_GUARD(unite(source->file_live, source->file_live_count, entries, count, &united,
                   &united_count, reason));
    bool was_complete = source->kube_complete;
    source->kube_complete = complete;
    mt_result result = replace_live(source, united, united_count, reason);
    if (!mt_result_is_ok(result)) {
        source->kube_complete = was_complete;
        free(united);
        return result;
    }
    free(source->kube_live);
    source->kube_live = entries;
    source->kube_live_count = count;
    return MT_OK_RESULT;
}

MT_RESULT mt_membership_source_open(struct mt_membership_source *source, const char *path,
                                    const char *trust_domain, long long now_ms,
                                    struct mt_text *reason)
{
    MT_ENSURE_REF(path);
    return open_source(source, path, trust_domain, now_ms, false, reason);
}

void mt_membership_source_poll(struct mt_membership_source *source, long long now_ms)
{
    if (source->published == NULL || source->path[0] == '\0' || now_ms < source->next_poll_ms)
        return;
    source->next_poll_ms = now_ms + MT_MEMBERSHIP_SOURCE_POLL_MS;
    if (!signature_changed(source))
        return;
    read_signature(source);
    char message[MT_CONFIG_MESSAGE_MAX] = "";
    struct mt_text reason = mt_text_on(message, sizeof(message));
    if (!mt_result_is_ok(reload(source, &reason))) {
        mt_log_error("membership file changed but was not loaded: %s; still publishing "
                     "generation %llu",
                     message, (unsigned long long)source->generation);
        return;
    }
    mt_log_info("membership reloaded from %s: generation %llu, %zu entries, %zu removed",
                source->path, (unsigned long long)source->generation, source->live_count,
                source->removed_count);
}

int mt_membership_source_poll_timeout(const struct mt_membership_source *source, long long now_ms)
{
    if (source->published == NULL || source->path[0] == '\0')
        return INT_MAX;
    long long wait = source->next_poll_ms - now_ms;
    return wait < 0 ? 0 : (wait > INT_MAX ? INT_MAX : (int)wait);
}

int mt_membership_source_reader_fd(const struct mt_membership_source *source)
{
    if (source->published == NULL)
        return -1;
    /* A new open file description, read-only: the agent's own is read-write. */
    char path[64];
    snprintf(path, sizeof(path), "/proc/self/fd/%d", source->memfd);
    return open(path, O_RDONLY | O_CLOEXEC);
}

void mt_membership_source_close(struct mt_membership_source *source)
{
    if (source == NULL)
        return;
    /* An agent that stops tells its readers to ask again: its successor publishes anew. */
    if (source->published != NULL) {
        struct mt_membership_header *header =
            (struct mt_membership_header *)(void *)source->published;
        __atomic_store_n(&header->superseded, 1u, __ATOMIC_RELEASE);
        munmap(source->published, source->published_size);
    }
    if (source->memfd >= 0)
        close(source->memfd);
    free(source->live);
    free(source->removed);
    free(source->file_live);
    free(source->kube_live);
    memset(source, 0, sizeof(*source));
    source->memfd = -1;
}
