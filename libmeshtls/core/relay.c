/*
 * Regions of shared memory that relay a forked connection's record state (see relay.h).
 *
 * A region is a memfd, sized and mapped MAP_SHARED in the forking process, its fd closed at once
 * (the mapping is what fork shares). Its layout: the slots' headers packed at the start, then one
 * page-aligned room per slot for an export, so that a fork costs four system calls and touches no
 * page: a fresh slot is all zeros (no owner, generation 0), and the rooms are paged in only by
 * the exports written into them.
 *
 * Owns the layout and the owner word's protocol. Must never block, allocate or make a system
 * call on a claim that succeeds: a sandboxed child claims before its first record, and gives the
 * state back from exit(), where only memory may be written.
 */
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "../util/sys.h"
#include "conn.h"
#include "relay.h"
#include "table.h"

/* The owner word of a slot whose state was lost (its last_pid lost it). */
#define OWNER_LOST (-1)

struct slot {
    _Atomic int32_t owner;       /* the pid using it, 0 for none, or OWNER_LOST */
    _Atomic uint32_t generation; /* bumped by each give-back */
    uint32_t length;             /* of the export in the room, for this generation */
    _Atomic int32_t last_pid;    /* the process that gave it back, or lost it, last */
};

struct mt_relay_region {
    unsigned char *base;
    size_t size;
    unsigned count;
    atomic_uint users; /* this process's connections linked to it */
};

static size_t page_size(void)
{
    long size = sysconf(_SC_PAGESIZE);
    return size > 0 ? (size_t)size : 4096;
}

static size_t round_up(size_t value, size_t unit)
{
    return (value + unit - 1) / unit * unit;
}

static size_t rooms_offset(unsigned count)
{
    return round_up((size_t)count * sizeof(struct slot), page_size());
}

static size_t room_size(void)
{
    return round_up(MT_CONN_EXPORT_MAX, page_size());
}

static struct slot *slot_of(const struct mt_relay_link *link)
{
    return (struct slot *)link->region->base + link->index;
}

static struct mt_relay_region *region_new(unsigned count)
{
    struct mt_relay_region *region = calloc(1, sizeof(*region));
    if (region == NULL)
        return NULL;
    region->count = count;
    region->size = rooms_offset(count) + (size_t)count * room_size();
    int memfd = memfd_create("meshtls-relay", MFD_CLOEXEC);
    if (memfd < 0)
        goto fail;
    void *base = MAP_FAILED;
    if (ftruncate(memfd, (off_t)region->size) == 0)
        base = mmap(NULL, region->size, PROT_READ | PROT_WRITE, MAP_SHARED, memfd, 0);
    (void)mt_sys_close(memfd);
    if (base == MAP_FAILED)
        goto fail;
    region->base = base;
    return region;
fail:
    free(region);
    return NULL;
}

/* Relayable: established, with a TLS session, and not relayed yet. */
static bool is_relayable(const struct mt_conn *conn)
{
    return conn->tls != NULL && conn->state == MT_CONN_ESTABLISHED && conn->relay.region == NULL;
}

static void count_relayable(struct mt_conn *conn, void *argument)
{
    pthread_mutex_lock(&conn->lock);
    if (is_relayable(conn))
        (*(unsigned *)argument)++;
    pthread_mutex_unlock(&conn->lock);
}

static void link_relayable(struct mt_conn *conn, void *argument)
{
    struct mt_relay_region *region = argument;
    pthread_mutex_lock(&conn->lock);
    /* A connection with several fds is visited once per fd: linked at the first. */
    unsigned index = atomic_load(&region->users);
    if (is_relayable(conn) && index < region->count) {
        conn->relay = (struct mt_relay_link){.region = region, .index = index, .generation = 0};
        atomic_fetch_add(&region->users, 1);
    }
    pthread_mutex_unlock(&conn->lock);
}

/*
 * A slot this process owns: at the fork, parent and child hold the same, current state, as for a
 * fresh slot. It is freed as a new generation without an export (nothing to copy: both copies
 * are it), so that whichever of the two uses the connection next claims it without importing.
 * A process with an older copy finds that generation without a state (length 0): lost to it.
 */
static void free_owned(struct mt_conn *conn, void *argument)
{
    pid_t pid = *(const pid_t *)argument;
    pthread_mutex_lock(&conn->lock);
    struct mt_relay_link *link = &conn->relay;
    if (link->region != NULL && atomic_load(&slot_of(link)->owner) == (int32_t)pid) {
        struct slot *slot = slot_of(link);
        slot->length = 0;
        atomic_store(&slot->last_pid, (int32_t)pid);
        link->generation++;
        atomic_store_explicit(&slot->generation, link->generation, memory_order_release);
        atomic_store_explicit(&slot->owner, 0, memory_order_release);
    }
    pthread_mutex_unlock(&conn->lock);
}

void mt_relay_before_fork(pid_t pid)
{
    mt_table_for_each(free_owned, &pid);
    unsigned count = 0;
    mt_table_for_each(count_relayable, &count);
    if (count == 0)
        return;
    /* Without a region, the connections stay as a fork left them before: the first process to
     * use one claims it, a second user's stale copy fails at the peer. */
    struct mt_relay_region *region = region_new(count);
    if (region == NULL)
        return;
    mt_table_for_each(link_relayable, region);
    if (atomic_load(&region->users) == 0) {
        (void)munmap(region->base, region->size);
        free(region);
    }
}

/* Whether pid has ended (a zombie has: it will never give anything back). */
static bool has_ended(pid_t pid)
{
    if (kill(pid, 0) == -1 && errno == ESRCH)
        return true;
    char path[64];
    snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
    FILE *stat = fopen(path, "re");
    if (stat == NULL)
        return false;
    char state = '?';
    /* "pid (comm) S ...": comm may hold spaces and parentheses, the state follows the last ')'. */
    char line[512];
    if (fgets(line, sizeof(line), stat) != NULL) {
        char *end = strrchr(line, ')');
        if (end != NULL && end[1] == ' ')
            state = end[2];
    }
    fclose(stat);
    return state == 'Z' || state == 'X';
}

enum mt_relay_claim mt_relay_claim(struct mt_relay_link *link, pid_t pid, pid_t *other,
                                   const unsigned char **state, size_t *length)
{
    struct slot *slot = slot_of(link);
    /* A newer generation without a state was made by a later fork for the processes that hold
     * it (free_owned): this copy can never continue. Told without taking the owner word, even
     * for a moment, in which the current holder's claim would find it taken and fail. */
    uint32_t seen = atomic_load_explicit(&slot->generation, memory_order_acquire);
    if (seen != link->generation && slot->length == 0 && atomic_load(&slot->owner) != OWNER_LOST) {
        *other = (pid_t)atomic_load(&slot->last_pid);
        return has_ended(*other) ? MT_RELAY_LOST : MT_RELAY_BUSY;
    }
    int32_t owner = 0;
    if (atomic_compare_exchange_strong(&slot->owner, &owner, (int32_t)pid)) {
        uint32_t generation = atomic_load_explicit(&slot->generation, memory_order_acquire);
        if (generation == link->generation)
            return MT_RELAY_CURRENT;
        *state = link->region->base + rooms_offset(link->region->count) +
                 (size_t)link->index * room_size();
        *length = slot->length;
        if (*length > 0)
            return MT_RELAY_NEWER;
        /* A generation only the processes of a later fork hold (free_owned): not this copy. */
        atomic_store(&slot->owner, 0);
        *other = (pid_t)atomic_load(&slot->last_pid);
        return has_ended(*other) ? MT_RELAY_LOST : MT_RELAY_BUSY;
    }
    if (owner == (int32_t)pid)
        return MT_RELAY_CURRENT;
    if (owner == OWNER_LOST) {
        *other = (pid_t)atomic_load(&slot->last_pid);
        return MT_RELAY_LOST;
    }
    *other = (pid_t)owner;
    return has_ended((pid_t)owner) ? MT_RELAY_LOST : MT_RELAY_BUSY;
}

void mt_relay_imported(struct mt_relay_link *link)
{
    link->generation = atomic_load_explicit(&slot_of(link)->generation, memory_order_acquire);
}

unsigned char *mt_relay_room(const struct mt_relay_link *link, size_t *capacity)
{
    *capacity = MT_CONN_EXPORT_MAX;
    return link->region->base + rooms_offset(link->region->count) +
           (size_t)link->index * room_size();
}

void mt_relay_give_back(struct mt_relay_link *link, pid_t pid, size_t length)
{
    struct slot *slot = slot_of(link);
    atomic_store(&slot->last_pid, (int32_t)pid);
    if (length == 0) {
        atomic_store(&slot->owner, OWNER_LOST);
        return;
    }
    slot->length = (uint32_t)length;
    uint32_t generation = link->generation + 1;
    atomic_store_explicit(&slot->generation, generation, memory_order_release);
    link->generation = generation;
    atomic_store_explicit(&slot->owner, 0, memory_order_release);
}

bool mt_relay_is_owner(const struct mt_relay_link *link, pid_t pid)
{
    return link->region != NULL && atomic_load(&slot_of(link)->owner) == (int32_t)pid;
}

void mt_relay_unlink(struct mt_relay_link *link)
{
    struct mt_relay_region *region = link->region;
    if (region == NULL)
        return;
    *link = (struct mt_relay_link){0};
    if (atomic_fetch_sub(&region->users, 1) != 1)
        return;
    /* The last of this process's connections in it: the states it held go with the mapping
     * (other processes keep theirs). */
    (void)munmap(region->base, region->size);
    free(region);
}
