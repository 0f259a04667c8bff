/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Cleanup attributes and ownership helpers used across the library
 * (systemd's alloc-util.h / bubblewrap's steal_pointer idiom).  Owns no
 * state.
 */
#pragma once

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define _cleanup_(f)    __attribute__((cleanup(f)))
#define _cleanup_free_  _cleanup_(tr__freep)
#define _cleanup_close_ _cleanup_(tr__closep)
#define _unused_        __attribute__((unused))
#define _nodiscard_     __attribute__((warn_unused_result))

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

/* Take ownership out of a cleanup variable. */
#define TAKE_PTR(p)                   \
        ({                            \
                typeof(p) _tp_ = (p); \
                (p) = NULL;           \
                _tp_;                 \
        })
#define TAKE_FD(fd)              \
        ({                       \
                int _tf_ = (fd); \
                (fd) = -1;       \
                _tf_;            \
        })

static inline void tr__freep(void *p) {
        free(*(void **) p);
}

/* close() that keeps errno: cleanup paths must not clobber the error being
 * reported. */
static inline void tr__closep(int *fd) {
        if (*fd >= 0) {
                int saved = errno;
                close(*fd);
                errno = saved;
        }
}

/* Define `name##p` so a handle type gets a cleanup function from its _free. */
#define TR_DEFINE_FREEP(type, fn)            \
        static inline void fn##p(type **p) { \
                if (*p)                      \
                        fn(*p);              \
        }

static inline int tr__negerrno(void) {
        return errno > 0 ? -errno : -EIO;
}

#define streq(a, b) (strcmp((a), (b)) == 0)
