/*
 * epoll translation for intercepted sockets (see epoll.h for the model).
 *
 * Owns the epoll instances created through the hooks, their records (one per registered fd) and
 * what the kernel is asked for on each. Must never hand the application an event for a record it
 * deleted, alter the epoll_data it stored, nor take a connection's lock with its own held.
 *
 * After fork, parent and child share every epoll instance in the kernel: the child's copy of a
 * record describes a registration its parent made and still relies on. Such a record is
 * inherited, and this process never changes it in the kernel (no EPOLL_CTL_MOD for what the
 * connection wants, no EPOLL_CTL_DEL when the child closes the fd: the kernel drops it when the
 * last process closes the file). Only the application's own epoll_ctl reaches an inherited
 * registration, as it would without libmeshtls; its EPOLL_CTL_MOD makes the registration this
 * process's.
 *
 * Locking: an instance's lock protects its records and attention list and is never held while a
 * connection's lock is taken (the engine's readiness calls lock the connection themselves), and a
 * connection never calls mt_epoll_notify() while holding its own lock. So those two never nest.
 * The global lock (record pool, list of live instances) is taken before an instance's lock, never
 * after: records are recycled only once their instance's lock is released.
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../util/sys.h"
#include "conn.h"
#include "epoll.h"
#include "fd_map.h"
#include "table.h"

/* Events that select what to wait for; the rest are flags describing how. */
#define INTEREST (EPOLLIN | EPOLLOUT | EPOLLPRI | EPOLLRDHUP)
/* A registration with only this is quiet, even for EPOLLERR/EPOLLHUP once it fired. */
#define QUIET ((uint32_t)EPOLLONESHOT)
#define KERNEL_BATCH 256
/* Waits for up to this many events use the stack; larger ones allocate once per call. */
#define STACK_EVENTS 64

struct instance;

struct record {
    struct instance *instance;
    struct record *next_in_bucket;
    struct record *next_attention;
    struct record *next_free;
    uint32_t index;
    uint32_t generation;
    int fd;
    bool live;
    bool in_attention;
    bool armed;          /* EPOLLONESHOT: false once reported, until EPOLL_CTL_MOD */
    bool meshed;         /* the fd was ours when last looked at */
    bool inherited;      /* copied by fork: another process's registration (see above) */
    uint32_t app_events; /* as the application registered them */
    epoll_data_t app_data;
    uint32_t kernel_events; /* as registered with the kernel now */
};

struct instance {
    pthread_mutex_t lock;
    int epfd;
    bool live;
    struct record **buckets;
    size_t bucket_count;
    size_t record_count;
    struct record *attention;
    struct instance *next_live;
};

static pthread_mutex_t global_lock = PTHREAD_MUTEX_INITIALIZER;
static struct mt_fd_map records; /* by record index; a record once stored stays */
static uint32_t record_high_water;
static struct record *free_records;
static struct mt_fd_map instances; /* by epfd; an instance once stored stays, live or not */
static struct instance *live_instances;
static atomic_int live_instance_count;

/* ---- records: type-stable, addressed by index and generation ----------------------------- */

static uint64_t key_of(const struct record *record)
{
    return (uint64_t)record->generation << 32 | record->index;
}

static struct record *record_from_key(uint64_t key)
{
    uint32_t index = (uint32_t)key;
    if (index >= MT_FD_MAP_LIMIT)
        return NULL;
    struct record *record = mt_fd_map_get(&records, (int)index);
    if (record == NULL || record->generation != (uint32_t)(key >> 32))
        return NULL;
    return record;
}

static struct record *record_allocate(void)
{
    pthread_mutex_lock(&global_lock);
    struct record *record = free_records;
    if (record != NULL) {
        free_records = record->next_free;
    } else if (record_high_water < MT_FD_MAP_LIMIT) {
        uint32_t index = record_high_water;
        mt_fd_map_slot *slot = mt_fd_map_slot_create(&records, (int)index);
        record = slot != NULL ? calloc(1, sizeof(*record)) : NULL;
        if (record != NULL) {
            record->index = index;
            atomic_store(slot, record);
            record_high_water++;
        }
    }
    pthread_mutex_unlock(&global_lock);
    return record;
}

/* With the global lock held: record (out of its instance) goes back to the pool. */
static void record_recycle_locked(struct record *record)
{
    record->live = false;
    record->generation++; /* events still in flight for it are now recognisably stale */
    record->next_free = free_records;
    free_records = record;
}

static void record_recycle(struct record *record)
{
    pthread_mutex_lock(&global_lock);
    record_recycle_locked(record);
    pthread_mutex_unlock(&global_lock);
}

/* ---- instances ----------------------------------------------------------------------------- */

static struct instance *instance_get(int epfd)
{
    struct instance *instance = mt_fd_map_get(&instances, epfd);
    return instance != NULL && instance->live ? instance : NULL;
}

bool mt_epoll_is_ours(int epfd)
{
    return instance_get(epfd) != NULL;
}

static size_t bucket_of(const struct instance *instance, int fd)
{
    return (size_t)(unsigned)fd & (instance->bucket_count - 1);
}

static struct record *find_locked(struct instance *instance, int fd)
{
    if (instance->bucket_count == 0)
        return NULL;
    for (struct record *r = instance->buckets[bucket_of(instance, fd)]; r; r = r->next_in_bucket)
        if (r->fd == fd)
            return r;
    return NULL;
}

static bool insert_locked(struct instance *instance, struct record *record)
{
    if (instance->record_count + 1 > instance->bucket_count) {
        size_t count = instance->bucket_count == 0 ? 16 : instance->bucket_count * 2;
        struct record **buckets = calloc(count, sizeof(*buckets));
        if (buckets == NULL)
            return false;
        for (size_t i = 0; i < instance->bucket_count; i++) {
            struct record *r = instance->buckets[i];
            while (r != NULL) {
                struct record *next = r->next_in_bucket;
                size_t b = (size_t)(unsigned)r->fd & (count - 1);
                r->next_in_bucket = buckets[b];
                buckets[b] = r;
                r = next;
            }
        }
        free(instance->buckets);
        instance->buckets = buckets;
        instance->bucket_count = count;
    }
    size_t b = bucket_of(instance, record->fd);
    record->next_in_bucket = instance->buckets[b];
    instance->buckets[b] = record;
    instance->record_count++;
    return true;
}

static void remove_locked(struct instance *instance, struct record *record)
{
    struct record **link = &instance->buckets[bucket_of(instance, record->fd)];
    while (*link != NULL && *link != record)
        link = &(*link)->next_in_bucket;
    if (*link == record) {
        *link = record->next_in_bucket;
        instance->record_count--;
    }
    for (link = &instance->attention; *link != NULL; link = &(*link)->next_attention) {
        if (*link == record) {
            *link = record->next_attention;
            break;
        }
    }
    record->in_attention = false;
}

static void attend_locked(struct instance *instance, struct record *record)
{
    if (record->in_attention || !record->live)
        return;
    record->in_attention = true;
    record->next_attention = instance->attention;
    instance->attention = record;
}

void mt_epoll_created(int epfd)
{
    mt_fd_map_slot *slot = mt_fd_map_slot_create(&instances, epfd);
    if (slot == NULL)
        return;
    struct instance *instance = atomic_load(slot);
    if (instance == NULL) {
        instance = calloc(1, sizeof(*instance));
        if (instance == NULL)
            return;
        pthread_mutex_init(&instance->lock, NULL);
        atomic_store(slot, instance);
    }
    pthread_mutex_lock(&global_lock);
    instance->epfd = epfd;
    instance->live = true;
    instance->next_live = live_instances;
    live_instances = instance;
    atomic_fetch_add(&live_instance_count, 1);
    pthread_mutex_unlock(&global_lock);
}

/* The instance on epfd is being closed: forget it and all its records. */
static void instance_close(struct instance *instance)
{
    pthread_mutex_lock(&global_lock);
    for (struct instance **link = &live_instances; *link != NULL; link = &(*link)->next_live) {
        if (*link == instance) {
            *link = instance->next_live;
            atomic_fetch_sub(&live_instance_count, 1);
            break;
        }
    }
    pthread_mutex_unlock(&global_lock);
    pthread_mutex_lock(&instance->lock);
    instance->live = false;
    struct record **buckets = instance->buckets;
    size_t bucket_count = instance->bucket_count;
    instance->buckets = NULL;
    instance->bucket_count = 0;
    instance->record_count = 0;
    instance->attention = NULL;
    pthread_mutex_unlock(&instance->lock);
    for (size_t i = 0; i < bucket_count; i++) {
        struct record *r = buckets[i];
        while (r != NULL) {
            struct record *next = r->next_in_bucket;
            record_recycle(r);
            r = next;
        }
    }
    free(buckets);
}

/* ---- translation --------------------------------------------------------------------------- */

/* With the instance lock held: registers events with the kernel if they changed. */
static void set_kernel_locked(struct instance *instance, struct record *record, uint32_t events)
{
    if (events == record->kernel_events || record->inherited)
        return;
    struct epoll_event event = {.events = events, .data.u64 = key_of(record)};
    if (mt_sys_epoll_ctl(instance->epfd, EPOLL_CTL_MOD, record->fd, &event) == 0)
        record->kernel_events = events;
}

/*
 * What to ask the kernel for a record, given what the connection asked for (kernel_wanted);
 * the app's flags are kept (EPOLLET), EPOLLONESHOT is ours to emulate.
 */
static uint32_t kernel_events_for(const struct record *record, short kernel_wanted)
{
    if (!record->armed)
        return QUIET;
    uint32_t flags = record->app_events & (EPOLLET | EPOLLRDHUP | EPOLLPRI);
    return (uint32_t)(unsigned short)kernel_wanted | flags;
}

struct pending_event {
    struct record *record;
    uint32_t events;
};

/* Adds or merges an event for record into the output. Returns the new count. */
static int emit(struct epoll_event *out, struct record **owners, int count, int capacity,
                struct record *record, uint32_t events)
{
    for (int i = 0; i < count; i++) {
        if (owners[i] == record) {
            out[i].events |= events;
            return count;
        }
    }
    if (count >= capacity)
        return count;
    out[count].events = events;
    out[count].data = record->app_data;
    owners[count] = record;
    return count + 1;
}

/* After reporting record: EPOLLONESHOT disarms it until the app's next EPOLL_CTL_MOD. */
static void reported_locked(struct instance *instance, struct record *record)
{
    if ((record->app_events & EPOLLONESHOT) && record->meshed) {
        record->armed = false;
        set_kernel_locked(instance, record, QUIET);
    }
}

/*
 * Looks at every record in the attention list: adjusts what the kernel is asked for and emits
 * what is ready without the kernel. Returns the new count; *wake gets the earliest handshake
 * deadline among them.
 */
static int process_attention(struct instance *instance, struct epoll_event *out,
                             struct record **owners, int count, int capacity, long long *wake)
{
    pthread_mutex_lock(&instance->lock);
    struct record *list = instance->attention;
    instance->attention = NULL;
    for (struct record *r = list; r != NULL; r = r->next_attention)
        r->in_attention = false;
    pthread_mutex_unlock(&instance->lock);

    while (list != NULL) {
        struct record *record = list;
        list = list->next_attention;
        pthread_mutex_lock(&instance->lock);
        bool usable = record->live && record->instance == instance;
        int fd = record->fd;
        uint32_t app_events = record->app_events;
        bool armed = record->armed;
        pthread_mutex_unlock(&instance->lock);
        if (!usable)
            continue;

        struct mt_conn *conn = mt_table_acquire(fd);
        short ready = 0;
        short wanted = 0;
        long long deadline = -1;
        if (conn != NULL) {
            ready = mt_conn_poll_prepare(conn, (short)(app_events & INTEREST), &wanted, &deadline);
            mt_conn_release(conn);
        }
        pthread_mutex_lock(&instance->lock);
        if (!record->live) {
            pthread_mutex_unlock(&instance->lock);
            continue;
        }
        record->meshed = conn != NULL;
        if (conn == NULL) {
            /* No longer ours (or never was): the kernel's own semantics, ONESHOT included. */
            set_kernel_locked(instance, record, record->armed ? record->app_events : QUIET);
        } else {
            set_kernel_locked(instance, record, kernel_events_for(record, wanted));
            if (deadline >= 0 && (*wake < 0 || deadline < *wake))
                *wake = deadline;
            if (deadline >= 0)
                attend_locked(instance, record);
            if (ready != 0 && armed && count < capacity) {
                count = emit(out, owners, count, capacity, record, (uint16_t)ready);
                reported_locked(instance, record);
                /* Level-triggered: stays ready until consumed, so look again next time. */
                if (!(app_events & EPOLLET))
                    attend_locked(instance, record);
            } else if (ready != 0 && armed) {
                /* No room in this call's array: report it in the next one, edge or not. */
                attend_locked(instance, record);
            }
        }
        pthread_mutex_unlock(&instance->lock);
    }
    return count;
}

/* Translates one kernel event. Returns the new count. */
static int translate_kernel_event(struct instance *instance, const struct epoll_event *event,
                                  struct epoll_event *out, struct record **owners, int count,
                                  int capacity)
{
    struct record *record = record_from_key(event->data.u64);
    if (record == NULL)
        return count;
    pthread_mutex_lock(&instance->lock);
    bool usable = record->live && record->instance == instance && record->armed;
    int fd = record->fd;
    uint32_t app_events = record->app_events;
    short asked = (short)record->kernel_events;
    pthread_mutex_unlock(&instance->lock);
    if (!usable)
        return count;

    struct mt_conn *conn = mt_table_acquire(fd);
    uint32_t events = event->events;
    if (conn != NULL) {
        events = (uint16_t)mt_conn_poll_finish(conn, (short)(app_events & INTEREST), asked,
                                               (short)event->events);
        mt_conn_release(conn);
    }
    if (events == 0)
        return count;
    pthread_mutex_lock(&instance->lock);
    if (record->live && record->armed) {
        count = emit(out, owners, count, capacity, record, events);
        if (conn != NULL)
            reported_locked(instance, record);
        else if (app_events & EPOLLONESHOT)
            record->armed = false; /* the kernel disarmed it itself */
    }
    pthread_mutex_unlock(&instance->lock);
    return count;
}

int mt_epoll_wait(int epfd, struct epoll_event *events, int capacity, int timeout_ms,
                  const sigset_t *mask)
{
    struct instance *instance = instance_get(epfd);
    if (instance == NULL || capacity <= 0 || events == NULL)
        return mt_sys_app_epoll_pwait(epfd, events, capacity, timeout_ms, mask);

    struct record *owners_stack[STACK_EVENTS];
    struct record **owners = owners_stack;
    struct epoll_event kernel_stack[STACK_EVENTS];
    struct epoll_event *kernel = kernel_stack;
    int batch = capacity < KERNEL_BATCH ? capacity : KERNEL_BATCH;
    if (capacity > STACK_EVENTS) {
        owners = malloc((size_t)capacity * sizeof(*owners));
        kernel = malloc((size_t)batch * sizeof(*kernel));
        if (owners == NULL || kernel == NULL) {
            free(owners);
            free(kernel);
            errno = ENOMEM;
            return -1;
        }
    }
    int errno_on_entry = errno;
    long long deadline = timeout_ms < 0 ? -1 : mt_sys_now_ms() + timeout_ms;
    int count = 0;
    int result = 0;
    for (;;) {
        long long wake = deadline;
        count = process_attention(instance, events, owners, count, capacity, &wake);
        int room = capacity - count < batch ? capacity - count : batch;
        int n = 0;
        if (room > 0) {
            n = mt_sys_app_epoll_pwait(epfd, kernel, room,
                                       count > 0 ? 0 : mt_sys_remaining_ms(wake), mask);
            if (n < 0) {
                result = count > 0 ? count : -1;
                break;
            }
        }
        for (int i = 0; i < n; i++)
            count = translate_kernel_event(instance, &kernel[i], events, owners, count, capacity);
        /* Handshake progress alone is invisible to the app: wait on until its deadline. */
        if (count > 0 || (deadline >= 0 && mt_sys_remaining_ms(deadline) == 0)) {
            result = count;
            break;
        }
    }
    if (capacity > STACK_EVENTS)
        MT_PRESERVING_ERRNO(free(owners); free(kernel));
    return mt_sys_success_keeps_errno(result, errno_on_entry);
}

/* Releases the instance's lock, then returns record (NULL: none) to the pool. */
static void unlock_and_recycle(struct instance *instance, struct record *record)
{
    pthread_mutex_unlock(&instance->lock);
    if (record != NULL)
        record_recycle(record);
}

/*
 * With the instance lock held: registers record (fresh for EPOLL_CTL_ADD, the fd's own for
 * EPOLL_CTL_MOD) with the kernel for what the application asked in event; meshed when the fd is
 * ours, whose connection wants the kernel asked for wanted. Returns the kernel's answer, errno as
 * it set it; on failure a modified record is as it was, a fresh one the caller's to recycle.
 */
static int register_locked(struct instance *instance, int operation, int fd,
                           const struct epoll_event *event, struct record *record, bool meshed,
                           short wanted)
{
    struct record previous = *record;
    record->instance = instance;
    record->fd = fd;
    record->app_events = event->events;
    record->app_data = event->data;
    record->armed = true;
    record->meshed = meshed;
    record->inherited = false;
    uint32_t kernel_events = meshed ? kernel_events_for(record, wanted) : event->events;
    struct epoll_event registration = {.events = kernel_events, .data.u64 = key_of(record)};
    if (mt_sys_app_epoll_ctl(instance->epfd, operation, fd, &registration) != 0) {
        if (operation == EPOLL_CTL_MOD)
            *record = previous;
        return -1;
    }
    record->kernel_events = kernel_events;
    if (operation == EPOLL_CTL_ADD) {
        record->live = true;
        record->in_attention = false;
        if (!insert_locked(instance, record)) {
            (void)mt_sys_app_epoll_ctl(instance->epfd, EPOLL_CTL_DEL, fd, NULL);
            errno = ENOMEM;
            return -1;
        }
    }
    /* A meshed fd may be ready without the kernel (buffered plaintext): look at it next wait. */
    if (meshed)
        attend_locked(instance, record);
    return 0;
}

int mt_epoll_ctl(int epfd, int operation, int fd, struct epoll_event *event)
{
    struct instance *instance = instance_get(epfd);
    if (instance == NULL)
        return mt_sys_app_epoll_ctl(epfd, operation, fd, event);

    if (operation == EPOLL_CTL_DEL) {
        /* The record goes whatever the kernel answers. */
        pthread_mutex_lock(&instance->lock);
        int result = mt_sys_app_epoll_ctl(epfd, operation, fd, event);
        struct record *record = find_locked(instance, fd);
        if (record != NULL)
            remove_locked(instance, record);
        MT_PRESERVING_ERRNO(unlock_and_recycle(instance, record));
        return result;
    }
    if ((operation != EPOLL_CTL_ADD && operation != EPOLL_CTL_MOD) || event == NULL)
        return mt_sys_app_epoll_ctl(epfd, operation, fd, event);

    struct mt_conn *conn = mt_table_acquire(fd);
    short wanted = 0;
    if (conn != NULL) {
        long long deadline = -1;
        (void)mt_conn_poll_prepare(conn, (short)(event->events & INTEREST), &wanted, &deadline);
        mt_conn_release(conn);
    }
    struct record *fresh = operation == EPOLL_CTL_ADD ? record_allocate() : NULL;
    if (operation == EPOLL_CTL_ADD && fresh == NULL) {
        errno = ENOMEM;
        return -1;
    }
    pthread_mutex_lock(&instance->lock);
    struct record *record = operation == EPOLL_CTL_ADD ? fresh : find_locked(instance, fd);
    int result =
        record != NULL
            ? register_locked(instance, operation, fd, event, record, conn != NULL, wanted)
            : mt_sys_app_epoll_ctl(epfd, operation, fd, event); /* ENOENT, as the kernel says */
    MT_PRESERVING_ERRNO(unlock_and_recycle(instance, result != 0 ? fresh : NULL));
    return result;
}

void mt_epoll_notify(int fd)
{
    if (atomic_load(&live_instance_count) == 0)
        return;
    pthread_mutex_lock(&global_lock);
    for (struct instance *instance = live_instances; instance; instance = instance->next_live) {
        pthread_mutex_lock(&instance->lock);
        struct record *record = find_locked(instance, fd);
        if (record != NULL)
            attend_locked(instance, record);
        pthread_mutex_unlock(&instance->lock);
    }
    pthread_mutex_unlock(&global_lock);
}

/*
 * With the global and the instance lock held: the record's fd is being closed. Its registration
 * goes from the kernel first when this process made it (the kernel would keep it while a dup of
 * the fd lives, here or in a child, and report a closed fd); an inherited one stays, since the
 * process that made it still waits on it.
 */
static void forget_record_locked(struct instance *instance, struct record *record)
{
    if (!record->inherited)
        (void)mt_sys_epoll_ctl(instance->epfd, EPOLL_CTL_DEL, record->fd, NULL);
    remove_locked(instance, record);
    record_recycle_locked(record);
}

void mt_epoll_forget_fd(int fd)
{
    if (atomic_load(&live_instance_count) == 0)
        return;
    struct instance *closing = instance_get(fd);
    if (closing != NULL)
        instance_close(closing);
    pthread_mutex_lock(&global_lock);
    for (struct instance *instance = live_instances; instance; instance = instance->next_live) {
        pthread_mutex_lock(&instance->lock);
        struct record *record = find_locked(instance, fd);
        if (record != NULL)
            forget_record_locked(instance, record);
        pthread_mutex_unlock(&instance->lock);
    }
    pthread_mutex_unlock(&global_lock);
}

void mt_epoll_forget_range(unsigned first, unsigned last)
{
    if (atomic_load(&live_instance_count) == 0)
        return;
    pthread_mutex_lock(&global_lock);
    for (struct instance *instance = live_instances; instance; instance = instance->next_live) {
        pthread_mutex_lock(&instance->lock);
        for (size_t b = 0; b < instance->bucket_count; b++) {
            struct record *record = instance->buckets[b];
            while (record != NULL) {
                struct record *next = record->next_in_bucket;
                if ((unsigned)record->fd >= first && (unsigned)record->fd <= last)
                    forget_record_locked(instance, record);
                record = next;
            }
        }
        pthread_mutex_unlock(&instance->lock);
    }
    pthread_mutex_unlock(&global_lock);
    /* Instances whose own fd is in the range close too. */
    for (int fd = mt_fd_map_next(&instances, first, last);
         fd >= 0 && atomic_load(&live_instance_count) > 0;
         fd = mt_fd_map_next(&instances, (unsigned)fd + 1, last)) {
        struct instance *closing = instance_get(fd);
        if (closing != NULL)
            instance_close(closing);
    }
}

void mt_epoll_after_fork_child(void)
{
    pthread_mutex_init(&global_lock, NULL);
    for (struct instance *instance = live_instances; instance; instance = instance->next_live) {
        pthread_mutex_init(&instance->lock, NULL);
        /* Every registration there is the parent's: it must find it as it left it. */
        for (size_t b = 0; b < instance->bucket_count; b++)
            for (struct record *r = instance->buckets[b]; r != NULL; r = r->next_in_bucket)
                r->inherited = true;
    }
}
