/* What the router has to publish after one turn of its loop: result
 * batches grouped per reply subject (one message per frontend, split only
 * when a batch would pass the bus' max payload) and work batches for
 * replicas. Filled under the router's lock, published after it is released.
 *
 * Not thread-safe; owned by the router thread. */
#ifndef CL_ROUTER_OUTBOX_H
#define CL_ROUTER_OUTBOX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cl_buf.h"
#include "cl_subject.h"

typedef struct cl__out_msg {
    struct cl__out_msg *next;
    char subject[CL_SUBJECT_MAX];
    cl_buf buf;
    /* Work batches only: whom it was for, to recover when publishing fails. */
    bool is_work;
    char model[CL_TOKEN_MAX + 1];
    char version[CL_TOKEN_MAX + 1];
    uint32_t replica_id;
    uint64_t batch_seq;
} cl__out_msg;

typedef struct {
    cl__out_msg *head; /* complete messages, in order */
    cl__out_msg **tail;
    cl__out_msg *groups; /* result batches still open, one per reply subject */
    size_t max_payload;
} cl__outbox;

void cl__outbox_init(cl__outbox *ob, size_t max_payload);
/* Frees every message, sent or not. */
void cl__outbox_deinit(cl__outbox *ob);

/* Adds one result for the task whose reply subject is reply (reply_len
 * bytes, not NUL-terminated) to that subject's open batch. */
cl_status cl__outbox_result(cl__outbox *ob, const char *reply, size_t reply_len,
                            uint64_t task_id, uint8_t status, const char *text) CL_MUST_USE;
/* A new empty message (buf initialised), NULL when out of memory. The
 * caller fills subject and buf, then hands it over with cl__outbox_push or
 * frees it with cl__out_msg_free. */
cl__out_msg *cl__out_msg_new(void);
/* Appends m (consumed) to the complete list. */
void cl__outbox_push(cl__outbox *ob, cl__out_msg *m);
/* Closes the open result batches (moves them to the complete list) and
 * hands the whole list to the caller, leaving the outbox empty. Free each
 * message with cl__out_msg_free. */
cl__out_msg *cl__outbox_take(cl__outbox *ob);
void cl__out_msg_free(cl__out_msg *m);

#endif
