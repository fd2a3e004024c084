/* Subject tokens: validation, the builders for every subject of the
 * protocol (docs/protocol.md), and splitting. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "cl_subject.h"

bool cl_token_valid(const char *token, const char *what, cl_err *err)
{
    if (what == NULL)
        what = "subject token";
    if (token == NULL || token[0] == '\0')
        return cl_err_set(err, CL_ERR_INVALID, "%s is empty: it must be 1 to %d characters", what,
                          CL_TOKEN_MAX),
               false;
    size_t len = strlen(token);
    if (len > CL_TOKEN_MAX)
        return cl_err_set(err, CL_ERR_INVALID,
                          "%s '%.40s...' is not valid: it is %zu bytes long, at most %d allowed",
                          what, token, len, CL_TOKEN_MAX),
               false;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)token[i];
        const char *why = NULL;
        char buf[96];
        if (c == '.' || c == '*' || c == '>' || c == '/') {
            snprintf(buf, sizeof(buf), "it may not contain '%c'", c);
            why = buf;
        } else if (c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f') {
            why = "it may not contain whitespace";
        } else if (c < 0x21 || c > 0x7e) {
            snprintf(buf, sizeof(buf),
                     "it may contain only printable ASCII (byte 0x%02x at offset %zu)", c, i);
            why = buf;
        }
        if (why != NULL) {
            /* Print the token without its control bytes. */
            char shown[CL_TOKEN_MAX + 1];
            size_t j;
            for (j = 0; j < len; j++) {
                unsigned char d = (unsigned char)token[j];
                shown[j] = (d >= 0x20 && d <= 0x7e) ? (char)d : '?';
            }
            shown[j] = '\0';
            cl_err_set(err, CL_ERR_INVALID, "%s '%s' is not valid: %s", what, shown, why);
            return false;
        }
    }
    return true;
}

/* A prefix is one or more tokens joined by '.'. */
static bool prefix_valid(const char *prefix, cl_err *err)
{
    if (prefix == NULL || prefix[0] == '\0')
        return cl_err_set(err, CL_ERR_INVALID, "subject prefix is empty"), false;
    char copy[CL_SUBJECT_MAX];
    if (strlen(prefix) >= sizeof(copy))
        return cl_err_set(err, CL_ERR_TOO_LARGE, "subject prefix is too long"), false;
    strcpy(copy, prefix);
    char *save = NULL;
    if (copy[0] == '.' || copy[strlen(copy) - 1] == '.' || strstr(copy, "..") != NULL)
        return cl_err_set(err, CL_ERR_INVALID,
                          "subject prefix '%s' is not valid: it has an empty element", prefix),
               false;
    for (char *tok = strtok_r(copy, ".", &save); tok != NULL; tok = strtok_r(NULL, ".", &save)) {
        if (!cl_token_valid(tok, "subject prefix element", err))
            return false;
    }
    return true;
}

static CL_MUST_USE cl_status join(char out[CL_SUBJECT_MAX], cl_err *err, const char *prefix,
                                  const char *const *tokens, size_t n)
{
    if (!prefix_valid(prefix, err))
        return err ? err->code : CL_ERR_INVALID;
    size_t off = 0;
    size_t plen = strlen(prefix);
    if (plen >= CL_SUBJECT_MAX)
        goto too_large;
    memcpy(out, prefix, plen);
    off = plen;
    for (size_t i = 0; i < n; i++) {
        if (!cl_token_valid(tokens[i], NULL, err))
            return CL_ERR_INVALID;
        size_t tlen = strlen(tokens[i]);
        if (off + 1 + tlen >= CL_SUBJECT_MAX)
            goto too_large;
        out[off++] = '.';
        memcpy(out + off, tokens[i], tlen);
        off += tlen;
    }
    out[off] = '\0';
    return CL_OK;
too_large:
    out[0] = '\0';
    return cl_err_set(err, CL_ERR_TOO_LARGE, "subject is longer than %d bytes",
                      CL_SUBJECT_MAX - 1);
}

cl_status cl_subject_build(char out[CL_SUBJECT_MAX], cl_err *err, const char *prefix, ...)
{
    const char *tokens[32];
    size_t n = 0;
    va_list ap;
    va_start(ap, prefix);
    for (const char *t = va_arg(ap, const char *); t != NULL; t = va_arg(ap, const char *)) {
        if (n == sizeof(tokens) / sizeof(tokens[0])) {
            va_end(ap);
            return cl_err_set(err, CL_ERR_TOO_LARGE, "subject has more than 32 elements");
        }
        tokens[n++] = t;
    }
    va_end(ap);
    return join(out, err, prefix, tokens, n);
}

/* Validates each (token, what) pair, then joins prefix and all tokens. */
static CL_MUST_USE cl_status build(char out[CL_SUBJECT_MAX], cl_err *err, const char *prefix,
                                   size_t n, const char *const *tokens, const char *const *whats)
{
    for (size_t i = 0; i < n; i++)
        if (whats[i] != NULL && !cl_token_valid(tokens[i], whats[i], err))
            return CL_ERR_INVALID;
    return join(out, err, prefix, tokens, n);
}

#define BUILD(...)                                                                             \
    do {                                                                                       \
        const char *const pairs_[][2] = {__VA_ARGS__};                                         \
        enum { n_ = sizeof(pairs_) / sizeof(pairs_[0]) };                                     \
        const char *toks_[n_], *whats_[n_];                                                    \
        for (size_t i_ = 0; i_ < n_; i_++) {                                                   \
            toks_[i_] = pairs_[i_][0];                                                         \
            whats_[i_] = pairs_[i_][1];                                                        \
        }                                                                                      \
        return build(out, err, prefix, n_, toks_, whats_);                                     \
    } while (0)

cl_status cl_subj_predict(char out[CL_SUBJECT_MAX], const char *prefix, const char *app, cl_err *err)
{
    BUILD({"predict", NULL}, {app, "application name"});
}

cl_status cl_subj_update(char out[CL_SUBJECT_MAX], const char *prefix, const char *app, cl_err *err)
{
    BUILD({"update", NULL}, {app, "application name"});
}

cl_status cl_subj_admin(char out[CL_SUBJECT_MAX], const char *prefix, const char *command, cl_err *err)
{
    BUILD({"admin", NULL}, {command, "admin command"});
}

cl_status cl_subj_route_task(char out[CL_SUBJECT_MAX], const char *prefix, const char *model,
                             const char *version, cl_err *err)
{
    BUILD({"route", NULL}, {"task", NULL}, {model, "model name"}, {version, "model version"});
}

cl_status cl_subj_route_pull(char out[CL_SUBJECT_MAX], const char *prefix, const char *model,
                             const char *version, cl_err *err)
{
    BUILD({"route", NULL}, {"pull", NULL}, {model, "model name"}, {version, "model version"});
}

cl_status cl_subj_route_stats(char out[CL_SUBJECT_MAX], const char *prefix, cl_err *err)
{
    BUILD({"route", NULL}, {"stats", NULL});
}

cl_status cl_subj_replica_work(char out[CL_SUBJECT_MAX], const char *prefix, const char *model,
                               const char *version, const char *replica, cl_err *err)
{
    BUILD({"replica", NULL}, {"work", NULL}, {model, "model name"}, {version, "model version"},
          {replica, "replica id"});
}

cl_status cl_subj_replica_hb(char out[CL_SUBJECT_MAX], const char *prefix, const char *model,
                             const char *version, const char *replica, cl_err *err)
{
    BUILD({"replica", NULL}, {"hb", NULL}, {model, "model name"}, {version, "model version"},
          {replica, "replica id"});
}

cl_status cl_subj_fe_results(char out[CL_SUBJECT_MAX], const char *prefix, const char *frontend,
                             cl_err *err)
{
    BUILD({"fe", NULL}, {frontend, "frontend id"}, {"results", NULL});
}

cl_status cl_subj_fe_results_model(char out[CL_SUBJECT_MAX], const char *prefix,
                                   const char *frontend, const char *model, cl_err *err)
{
    BUILD({"fe", NULL}, {frontend, "frontend id"}, {"results", NULL}, {model, "model name"});
}

cl_status cl_subj_cm(char out[CL_SUBJECT_MAX], const char *prefix, const char *command, cl_err *err)
{
    BUILD({"cm", NULL}, {command, "container manager command"});
}

cl_status cl_subj_route_hello(char out[CL_SUBJECT_MAX], const char *prefix, cl_err *err)
{
    BUILD({"route", NULL}, {"hello", NULL});
}

cl_status cl_subj_route_leader(char out[CL_SUBJECT_MAX], const char *prefix, cl_err *err)
{
    BUILD({"route", NULL}, {"leader", NULL});
}

cl_status cl_subj_supervisor(char out[CL_SUBJECT_MAX], const char *prefix, const char *what,
                             cl_err *err)
{
    BUILD({"sv", NULL}, {what, "supervisor subject"});
}

/* subject (len bytes) for a message: printable, at most 60 bytes shown. */
static void shown(char out[72], const char *subject, size_t len)
{
    size_t n = len < 60 ? len : 60, j;
    for (j = 0; j < n; j++) {
        unsigned char c = (unsigned char)subject[j];
        out[j] = (c >= 0x20 && c <= 0x7e) ? (char)c : '?';
    }
    strcpy(out + j, len > n ? "..." : "");
}

bool cl_subj_valid_publish(const char *subject, size_t len, cl_err *err)
{
    char show[72];
    if (subject == NULL || len == 0)
        return cl_err_set(err, CL_ERR_INVALID, "subject is empty"), false;
    if (len >= CL_SUBJECT_MAX) {
        shown(show, subject, len);
        return cl_err_set(err, CL_ERR_INVALID, "subject '%s' is %zu bytes long, at most %d allowed",
                          show, len, CL_SUBJECT_MAX - 1),
               false;
    }
    const char *why = NULL;
    char buf[64];
    size_t i;
    for (i = 0; i < len && why == NULL; i++) {
        unsigned char c = (unsigned char)subject[i];
        if (c == '.' && (i == 0 || i == len - 1 || subject[i - 1] == '.'))
            why = "it has an empty element";
        else if (c == '*' || c == '>')
            why = "it holds a wildcard";
        else if (c < 0x21 || c > 0x7e)
            why = (snprintf(buf, sizeof(buf),
                            "it may hold only printable ASCII without spaces (byte 0x%02x)", c),
                   buf);
    }
    if (why == NULL)
        return true;
    shown(show, subject, len);
    cl_err_set(err, CL_ERR_INVALID, "subject '%s' is not valid: %s at offset %zu", show, why,
               i - 1);
    return false;
}

bool cl_subj_is_fe_results(const char *subject, size_t len, const char *prefix,
                           const char *model, cl_err *err)
{
    static const char results[] = ".results.", fe[] = ".fe.";
    if (!cl_subj_valid_publish(subject, len, err))
        return false;
    char show[72];
    size_t rl = sizeof(results) - 1, fl = sizeof(fe) - 1;
    /* <prefix>.fe.<id>.results.<model>: the model is the last element
     * (valid_publish: not empty), ".results." before it, then the id,
     * then ".fe." after the prefix. */
    size_t m_start = len;
    while (m_start > 0 && subject[m_start - 1] != '.')
        m_start--;
    bool ok = m_start >= rl + fl + 2 && memcmp(subject + m_start - rl, results, rl) == 0;
    size_t id_end = ok ? m_start - rl : 0, id_start = id_end;
    while (ok && id_start > 0 && subject[id_start - 1] != '.')
        id_start--;
    ok = ok && id_start < id_end && id_start >= fl + 1 &&
         memcmp(subject + id_start - fl, fe, fl) == 0;
    size_t plen = ok ? id_start - fl : 0;
    if (ok && prefix != NULL)
        ok = strlen(prefix) == plen && memcmp(subject, prefix, plen) == 0;
    if (ok && model != NULL)
        ok = strlen(model) == len - m_start && memcmp(subject + m_start, model, len - m_start) == 0;
    if (ok)
        return true;
    shown(show, subject, len);
    cl_err_set(err, CL_ERR_INVALID,
               "subject '%s' is not a frontend's results subject %s.fe.<id>.results.%s", show,
               prefix != NULL ? prefix : "<prefix>", model != NULL ? model : "<model>");
    return false;
}

int cl_subject_split(char *subject, char **tokens, int max)
{
    int n = 0;
    char *p = subject;
    if (subject == NULL || subject[0] == '\0')
        return 0;
    for (;;) {
        if (n == max)
            return -1;
        tokens[n++] = p;
        char *dot = strchr(p, '.');
        if (dot == NULL)
            break;
        *dot = '\0';
        p = dot + 1;
    }
    return n;
}
