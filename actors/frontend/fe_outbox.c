/* Outgoing task batches, coalesced per model version (see fe_core.h).
 *
 * The io thread appends the tasks of every query it reads in a turn of its
 * bus loop (NATS and HTTP) and publishes them at the turn's end (or when a
 * batch is full): one message per model version under load, one per query
 * at light load. A batch never exceeds the server's max payload. */
#include <stdlib.h>
#include <string.h>

#include "cl_log.h"
#include "fe_core.h"

void cl_fe_outbox_init(cl_fe_outbox *ob)
{
    memset(ob, 0, sizeof(*ob));
}

void cl_fe_outbox_deinit(cl_fe_outbox *ob)
{
    for (size_t i = 0; i < ob->n; i++)
        cl_buf_deinit(&ob->v[i].buf);
    free(ob->v);
    memset(ob, 0, sizeof(*ob));
}

/* Answers the tasks of a batch that could not be sent. */
static void fail_batch(cl_frontend *fe, const fe_out_batch *b)
{
    cl_task *tasks = NULL;
    uint32_t n = 0;
    cl_err err;
    if (cl_wire_tasks_decode(b->buf.data, b->buf.len, &tasks, &n, &err) != CL_OK) {
        cl_error("cannot decode an unsent batch (%s); its queries answer at their deadline",
                 err.msg);
        return;
    }
    cl_result *r = calloc(n ? n : 1, sizeof(*r));
    if (r != NULL) {
        for (uint32_t i = 0; i < n; i++)
            r[i] = (cl_result){.task_id = tasks[i].task_id, .status = CL_RESULT_NO_REPLICA};
        cl_fe_complete(fe, r, n, NULL);
    }
    free(r);
    free(tasks);
}

static void publish(cl_frontend *fe, fe_out_batch *b)
{
    if (b->count == 0)
        return;
    cl_status s = cl_fe_publish(fe, b->subject, b->buf.data, b->buf.len);
    if (s != CL_OK) {
        cl_warn("cannot send %u tasks to %s: %s", b->count, b->subject, cl_status_text(s));
        fail_batch(fe, b);
    }
    b->count = 0;
    cl_buf_reset(&b->buf);
}

static fe_out_batch *batch_for(cl_fe_outbox *ob, const char *subject)
{
    for (size_t i = 0; i < ob->n; i++)
        if (strcmp(ob->v[i].subject, subject) == 0)
            return &ob->v[i];
    if (ob->n == ob->cap) {
        size_t ncap = ob->cap ? ob->cap * 2 : 4;
        fe_out_batch *v = realloc(ob->v, ncap * sizeof(*v));
        if (v == NULL)
            return NULL;
        ob->v = v;
        ob->cap = ncap;
    }
    fe_out_batch *b = &ob->v[ob->n++];
    memset(b, 0, sizeof(*b));
    strncpy(b->subject, subject, sizeof(b->subject) - 1);
    cl_buf_init(&b->buf);
    return b;
}

cl_status cl_fe_outbox_add(cl_frontend *fe, cl_fe_outbox *ob, const char *subject,
                           const cl_task *task)
{
    fe_out_batch *b = batch_for(ob, subject);
    if (b == NULL)
        return CL_ERR_NOMEM;
    size_t need = CL_FE_TASK_OVERHEAD + task->reply_len + task->input_len;
    if (b->count > 0 &&
        (b->buf.len + need > fe->max_payload || b->count >= CL_FE_BATCH_MAX_TASKS))
        publish(fe, b);
    if (b->count == 0) {
        cl_buf_reset(&b->buf);
        if (cl_wire_tasks_begin(&b->buf) != CL_OK)
            return CL_ERR_NOMEM;
    }
    if (cl_wire_tasks_add(&b->buf, task) != CL_OK) {
        if (b->count == 0)
            cl_buf_reset(&b->buf);
        return CL_ERR_NOMEM;
    }
    b->count++;
    return CL_OK;
}

void cl_fe_outbox_flush(cl_frontend *fe, cl_fe_outbox *ob)
{
    for (size_t i = 0; i < ob->n; i++)
        publish(fe, &ob->v[i]);
}


