/* Result grouping per reply subject and the list of messages to publish.
 * See outbox.h. */
#include <stdlib.h>
#include <string.h>

#include "cl_log.h"
#include "cl_wire.h"
#include "outbox.h"

void cl__outbox_init(cl__outbox *ob, size_t max_payload)
{
    ob->head = NULL;
    ob->tail = &ob->head;
    ob->groups = NULL;
    ob->max_payload = max_payload;
}

void cl__out_msg_free(cl__out_msg *m)
{
    if (m == NULL)
        return;
    cl_buf_deinit(&m->buf);
    free(m);
}

static void free_list(cl__out_msg *m)
{
    while (m != NULL) {
        cl__out_msg *next = m->next;
        cl__out_msg_free(m);
        m = next;
    }
}

void cl__outbox_deinit(cl__outbox *ob)
{
    free_list(ob->head);
    free_list(ob->groups);
    cl__outbox_init(ob, ob->max_payload);
}

cl__out_msg *cl__out_msg_new(void)
{
    cl__out_msg *m = calloc(1, sizeof(*m));
    if (m != NULL)
        cl_buf_init(&m->buf);
    return m;
}

static void append(cl__outbox *ob, cl__out_msg *m)
{
    m->next = NULL;
    *ob->tail = m;
    ob->tail = &m->next;
}

void cl__outbox_push(cl__outbox *ob, cl__out_msg *m)
{
    append(ob, m);
}

/* Unlinks the open group for subject, or returns NULL. */
static cl__out_msg *take_group(cl__outbox *ob, const char *reply, size_t reply_len)
{
    for (cl__out_msg **pp = &ob->groups; *pp != NULL; pp = &(*pp)->next) {
        cl__out_msg *g = *pp;
        if (strncmp(g->subject, reply, reply_len) == 0 && g->subject[reply_len] == '\0') {
            *pp = g->next;
            return g;
        }
    }
    return NULL;
}

cl_status cl__outbox_result(cl__outbox *ob, const char *reply, size_t reply_len,
                            uint64_t task_id, uint8_t status, const char *text)
{
    if (reply_len == 0 || reply_len >= CL_SUBJECT_MAX)
        return CL_ERR_INVALID; /* the router rejects such tasks on arrival */
    size_t text_len = text ? strlen(text) : 0;
    cl__out_msg *g = take_group(ob, reply, reply_len);
    if (g != NULL && g->buf.len + 13 + text_len > ob->max_payload) {
        append(ob, g); /* full: send it as is and open another */
        g = NULL;
    }
    if (g == NULL) {
        g = cl__out_msg_new();
        if (g == NULL || cl_wire_results_begin(&g->buf) != CL_OK) {
            cl__out_msg_free(g);
            cl_error("out of memory: dropping the result of task %llu",
                     (unsigned long long)task_id);
            return CL_ERR_NOMEM;
        }
        memcpy(g->subject, reply, reply_len);
        g->subject[reply_len] = '\0';
    }
    cl_status s = cl_wire_results_add(&g->buf, task_id, status, text, (uint32_t)text_len);
    if (s != CL_OK)
        cl_error("out of memory: dropping the result of task %llu", (unsigned long long)task_id);
    g->next = ob->groups;
    ob->groups = g;
    return s;
}

cl__out_msg *cl__outbox_take(cl__outbox *ob)
{
    while (ob->groups != NULL) {
        cl__out_msg *g = ob->groups;
        ob->groups = g->next;
        append(ob, g);
    }
    cl__out_msg *list = ob->head;
    cl__outbox_init(ob, ob->max_payload);
    return list;
}
