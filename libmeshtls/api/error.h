/*
 * The words behind meshtls_last_error(): one thread-local sentence per thread, set by every
 * public call that fails and cleared by every one that succeeds (or must only wait: EAGAIN,
 * EINPROGRESS), shared by the files of api/.
 */
#ifndef MT_API_ERROR_H
#define MT_API_ERROR_H

#include <sys/types.h>

/* The sentence of this thread's last failed call; "" when the last call did not fail. */
const char *mt_api_last_error(void);

/* The call succeeded, or only has to wait: nothing to say. */
void mt_api_clear_error(void);

/* Says why a call failed, in words (printf format); errno is left as it was. */
__attribute__((format(printf, 1, 2))) void mt_api_say(const char *format, ...);

/*
 * A call on fd returned result: on a failure other than a wait, remembers why (the connection's
 * own reason when it has one, then errno's words), else clears the sentence. Returns result,
 * errno as it was. fd -1: no connection to ask.
 */
ssize_t mt_api_checked(int fd, ssize_t result);

/* mt_api_checked for a call known to have failed, whatever errno says. */
int mt_api_failed(int fd, int result);

#endif
