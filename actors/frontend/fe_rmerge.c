/* The routers' metrics, added up (see fe_rmerge.h). */
#include "fe_rmerge.h"

#include <math.h>
#include <string.h>

/* The gauges of a version's queue: taken from the leading routers only. */
static bool is_gauge(const char *key)
{
    return strcmp(key, "queue_depth") == 0 || strcmp(key, "replicas_live") == 0 ||
           strcmp(key, "replicas_busy") == 0;
}

static bool is_hist(const cJSON *o)
{
    return cJSON_IsObject(o) && cJSON_IsArray(cJSON_GetObjectItemCaseSensitive(o, "bounds")) &&
           cJSON_IsArray(cJSON_GetObjectItemCaseSensitive(o, "buckets"));
}

static bool same_numbers(const cJSON *a, const cJSON *b)
{
    if (cJSON_GetArraySize(a) != cJSON_GetArraySize(b))
        return false;
    for (const cJSON *x = a->child, *y = b->child; x != NULL && y != NULL;
         x = x->next, y = y->next) {
        if (!cJSON_IsNumber(x) || !cJSON_IsNumber(y) || x->valuedouble != y->valuedouble)
            return false;
    }
    return true;
}

static void set_number(cJSON *o, const char *key, double v)
{
    cJSON *item = cJSON_GetObjectItemCaseSensitive(o, key);
    if (cJSON_IsNumber(item))
        cJSON_SetNumberValue(item, v);
    else if (item == NULL)
        cJSON_AddNumberToObject(o, key, v);
}

static double number_or(const cJSON *o, const char *key, double dflt)
{
    const cJSON *item = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsNumber(item) ? item->valuedouble : dflt;
}

/* Adds histogram src into dst (same bounds, checked by the caller). An
 * empty histogram's min and max say nothing. */
static void hist_add(cJSON *dst, const cJSON *src)
{
    double dcount = number_or(dst, "count", 0), scount = number_or(src, "count", 0);
    cJSON *db = cJSON_GetObjectItemCaseSensitive(dst, "buckets");
    const cJSON *y = cJSON_GetObjectItemCaseSensitive(src, "buckets")->child;
    for (cJSON *x = db->child; x != NULL && y != NULL; x = x->next, y = y->next) {
        if (cJSON_IsNumber(x) && cJSON_IsNumber(y))
            cJSON_SetNumberValue(x, x->valuedouble + y->valuedouble);
    }
    set_number(dst, "sum", number_or(dst, "sum", 0) + number_or(src, "sum", 0));
    set_number(dst, "sumsq", number_or(dst, "sumsq", 0) + number_or(src, "sumsq", 0));
    if (scount > 0) {
        double smin = number_or(src, "min", 0), smax = number_or(src, "max", 0);
        set_number(dst, "min", dcount > 0 ? fmin(number_or(dst, "min", smin), smin) : smin);
        set_number(dst, "max", dcount > 0 ? fmax(number_or(dst, "max", smax), smax) : smax);
    }
    set_number(dst, "count", dcount + scount);
}

typedef struct {
    size_t skipped;
} merge_ctx;

static bool merge_object(cJSON *dst, const cJSON *src, bool leading, merge_ctx *m);

/* The entry of versions with src's model and version, made when missing. */
static cJSON *version_entry(cJSON *versions, const cJSON *src)
{
    const cJSON *model = cJSON_GetObjectItemCaseSensitive(src, "model");
    const cJSON *version = cJSON_GetObjectItemCaseSensitive(src, "version");
    if (!cJSON_IsString(model) || !cJSON_IsString(version))
        return NULL;
    cJSON *v;
    cJSON_ArrayForEach(v, versions)
    {
        const cJSON *vm = cJSON_GetObjectItemCaseSensitive(v, "model");
        const cJSON *vv = cJSON_GetObjectItemCaseSensitive(v, "version");
        if (strcmp(vm->valuestring, model->valuestring) == 0 &&
            strcmp(vv->valuestring, version->valuestring) == 0)
            return v;
    }
    v = cJSON_CreateObject();
    if (v == NULL || !cJSON_AddItemToArray(versions, v)) {
        cJSON_Delete(v);
        return NULL;
    }
    if (cJSON_AddStringToObject(v, "model", model->valuestring) == NULL ||
        cJSON_AddStringToObject(v, "version", version->valuestring) == NULL)
        return NULL;
    return v;
}

static bool merge_versions(cJSON *dst, const cJSON *src, bool leading, merge_ctx *m)
{
    const cJSON *v;
    cJSON_ArrayForEach(v, src)
    {
        if (!cJSON_IsObject(v))
            continue;
        cJSON *into = version_entry(dst, v);
        if (into == NULL) {
            if (!cJSON_IsString(cJSON_GetObjectItemCaseSensitive(v, "model")) ||
                !cJSON_IsString(cJSON_GetObjectItemCaseSensitive(v, "version"))) {
                m->skipped++; /* no name to match it on */
                continue;
            }
            return false;
        }
        if (!merge_object(into, v, leading, m))
            return false;
    }
    return true;
}

/* Adds src's numbers into dst, key by key (see fe_rmerge.h). */
static bool merge_object(cJSON *dst, const cJSON *src, bool leading, merge_ctx *m)
{
    const cJSON *item;
    cJSON_ArrayForEach(item, src)
    {
        const char *key = item->string;
        if (key == NULL || strcmp(key, "router") == 0 || strcmp(key, "routers") == 0 ||
            strcmp(key, "skipped") == 0 || strcmp(key, "model") == 0 ||
            strcmp(key, "version") == 0)
            continue;
        cJSON *have = cJSON_GetObjectItemCaseSensitive(dst, key);
        if (cJSON_IsNumber(item)) {
            double add = is_gauge(key) && !leading ? 0 : item->valuedouble;
            if (have == NULL) {
                if (cJSON_AddNumberToObject(dst, key, add) == NULL)
                    return false;
            } else if (cJSON_IsNumber(have)) {
                cJSON_SetNumberValue(have, have->valuedouble + add);
            }
        } else if (is_hist(item)) {
            if (have == NULL) {
                cJSON *copy = cJSON_Duplicate(item, true);
                if (copy == NULL || !cJSON_AddItemToObject(dst, key, copy)) {
                    cJSON_Delete(copy);
                    return false;
                }
            } else if (is_hist(have) &&
                       same_numbers(cJSON_GetObjectItemCaseSensitive(have, "bounds"),
                                    cJSON_GetObjectItemCaseSensitive(item, "bounds")) &&
                       cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(have, "buckets")) ==
                           cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(item, "buckets"))) {
                hist_add(have, item);
            } else {
                m->skipped++;
            }
        } else if (strcmp(key, "versions") == 0 && cJSON_IsArray(item)) {
            if (have == NULL) {
                have = cJSON_AddArrayToObject(dst, key);
                if (have == NULL)
                    return false;
            }
            if (cJSON_IsArray(have) && !merge_versions(have, item, leading, m))
                return false;
        }
        /* Anything else (strings, unknown shapes) is not a metric. */
    }
    return true;
}

static bool is_snapshot(const cJSON *s)
{
    return cJSON_IsObject(s) && cJSON_IsArray(cJSON_GetObjectItemCaseSensitive(s, "versions"));
}

static bool snapshot_leads(const cJSON *s)
{
    const cJSON *who = cJSON_GetObjectItemCaseSensitive(s, "router");
    const cJSON *leading = cJSON_GetObjectItemCaseSensitive(who, "leading");
    /* A router from before standbys answered only answered when leading. */
    return leading == NULL || cJSON_IsTrue(leading);
}

cJSON *cl_fe_router_merge(const cJSON *const *snaps, size_t n)
{
    cJSON *out = cJSON_CreateObject();
    cJSON *routers = cJSON_AddArrayToObject(out, "routers");
    if (out == NULL || routers == NULL || cJSON_AddArrayToObject(out, "versions") == NULL) {
        cJSON_Delete(out);
        return NULL;
    }
    merge_ctx m = {0};
    size_t merged = 0;
    for (size_t i = 0; i < n; i++) {
        if (!is_snapshot(snaps[i])) {
            m.skipped++;
            continue;
        }
        if (!merge_object(out, snaps[i], snapshot_leads(snaps[i]), &m)) {
            cJSON_Delete(out);
            return NULL;
        }
        const cJSON *who = cJSON_GetObjectItemCaseSensitive(snaps[i], "router");
        cJSON *copy = cJSON_IsObject(who) ? cJSON_Duplicate(who, true) : cJSON_CreateObject();
        if (copy == NULL || !cJSON_AddItemToArray(routers, copy)) {
            cJSON_Delete(copy);
            cJSON_Delete(out);
            return NULL;
        }
        cJSON_DeleteItemFromObjectCaseSensitive(copy, "routers");
        merged++;
    }
    if (merged == 0) {
        cJSON_Delete(out);
        return NULL;
    }
    cJSON_AddNumberToObject(out, "skipped", (double)m.skipped);
    return out;
}

size_t cl_fe_router_expected(const cJSON *const *snaps, size_t n)
{
    size_t want = 1;
    for (size_t i = 0; i < n; i++) {
        const cJSON *who = cJSON_GetObjectItemCaseSensitive(snaps[i], "router");
        double r = number_or(who, "routers", 1);
        /* A bound, so that a bogus answer cannot make a scrape wait long
         * for routers that do not exist: it waits at most its timeout. */
        if (r > (double)want && r <= 64)
            want = (size_t)r;
    }
    return want;
}
