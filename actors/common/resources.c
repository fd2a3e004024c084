/* Model resources (cl_resources.h): Kubernetes quantities and the
 * requests/limits object. */
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cl_resources.h"

static const struct {
    const char *suffix;
    double factor;
} suffixes[] = {
    {"Ki", 1024.0}, {"Mi", 1048576.0}, {"Gi", 1073741824.0}, {"Ti", 1099511627776.0},
    {"Pi", 1125899906842624.0}, {"Ei", 1152921504606846976.0}, {"n", 1e-9}, {"u", 1e-6},
    {"m", 1e-3}, {"k", 1e3}, {"M", 1e6}, {"G", 1e9}, {"T", 1e12}, {"P", 1e15}, {"E", 1e18},
};

#define QUANTITY_HINT                                                                      \
    "a quantity is a number with an optional suffix: m (thousandths), k, M, G, T, P, E, " \
    "or Ki, Mi, Gi, Ti, Pi, Ei, for example \"500m\", \"2\" or \"256Mi\""

cl_status cl_quantity_parse(const char *text, double *out, cl_err *err)
{
    const char *p = text;
    if (*p == '+' || *p == '-')
        p++;
    bool any = false;
    while (*p >= '0' && *p <= '9') {
        p++;
        any = true;
    }
    if (*p == '.') {
        p++;
        while (*p >= '0' && *p <= '9') {
            p++;
            any = true;
        }
    }
    if (!any)
        return cl_err_set(err, CL_ERR_INVALID, "'%.60s' is not a quantity (%s)", text,
                          QUANTITY_HINT);
    char number[64];
    size_t n = (size_t)(p - text);
    if (n >= sizeof(number))
        return cl_err_set(err, CL_ERR_INVALID, "'%.60s' is too long for a quantity", text);
    memcpy(number, text, n);
    number[n] = '\0';
    double v = strtod(number, NULL);
    if (*p == 'e' || *p == 'E') {
        const char *e = p + 1;
        if (*e == '+' || *e == '-')
            e++;
        if (*e >= '0' && *e <= '9') {
            char *end;
            long x = strtol(p + 1, &end, 10);
            if (*end != '\0' || x > 18 || x < -9)
                return cl_err_set(err, CL_ERR_INVALID, "'%.60s' is not a quantity (%s)", text,
                                  QUANTITY_HINT);
            *out = v * pow(10.0, (double)x);
            return CL_OK;
        }
    }
    if (*p == '\0') {
        *out = v;
        return CL_OK;
    }
    for (size_t i = 0; i < sizeof(suffixes) / sizeof(suffixes[0]); i++) {
        if (strcmp(p, suffixes[i].suffix) == 0) {
            *out = v * suffixes[i].factor;
            return CL_OK;
        }
    }
    return cl_err_set(err, CL_ERR_INVALID, "'%.60s' is not a quantity: unknown suffix '%.10s' (%s)",
                      text, p, QUANTITY_HINT);
}

static bool known_name(const char *name)
{
    return strcmp(name, "cpu") == 0 || strcmp(name, "memory") == 0 ||
           strcmp(name, "ephemeral-storage") == 0 || strchr(name, '/') != NULL;
}

/* One part (requests or limits): a normalised copy, or NULL with err. */
static cJSON *part(const cJSON *in, const char *which, cl_err *err)
{
    if (!cJSON_IsObject(in)) {
        cl_err_set(err, CL_ERR_INVALID,
                   "resources.%s must be an object of resource names and quantities, such as "
                   "{\"cpu\": \"500m\", \"memory\": \"256Mi\"}",
                   which);
        return NULL;
    }
    cJSON *out = cJSON_CreateObject();
    const cJSON *v;
    cJSON_ArrayForEach(v, in)
    {
        if (!known_name(v->string)) {
            cl_err_set(err, CL_ERR_INVALID,
                       "resources.%s has an unknown resource '%.60s' (cpu, memory, "
                       "ephemeral-storage, or an extended resource such as nvidia.com/gpu)",
                       which, v->string);
            cJSON_Delete(out);
            return NULL;
        }
        char text[64];
        if (cJSON_IsString(v)) {
            snprintf(text, sizeof(text), "%s", v->valuestring);
        } else if (cJSON_IsNumber(v)) {
            snprintf(text, sizeof(text), "%.17g", v->valuedouble);
        } else {
            cl_err_set(err, CL_ERR_INVALID,
                       "resources.%s.%s must be a quantity as a string, such as \"500m\"",
                       which, v->string);
            cJSON_Delete(out);
            return NULL;
        }
        double q;
        cl_err why;
        if (cl_quantity_parse(text, &q, &why) != CL_OK) {
            cl_err_set(err, CL_ERR_INVALID, "resources.%s.%s: %s", which, v->string, why.msg);
            cJSON_Delete(out);
            return NULL;
        }
        if (q < 0) {
            cl_err_set(err, CL_ERR_INVALID, "resources.%s.%s: '%s' is negative", which,
                       v->string, text);
            cJSON_Delete(out);
            return NULL;
        }
        cJSON_AddStringToObject(out, v->string, text);
    }
    return out;
}

cl_status cl_resources_normalise(const cJSON *in, cJSON **out, cl_err *err)
{
    *out = NULL;
    if (!cJSON_IsObject(in))
        return cl_err_set(err, CL_ERR_INVALID,
                          "resources must be an object such as {\"requests\": {\"cpu\": "
                          "\"500m\"}, \"limits\": {\"memory\": \"1Gi\"}}");
    const cJSON *v;
    cJSON_ArrayForEach(v, in)
    {
        if (strcmp(v->string, "requests") != 0 && strcmp(v->string, "limits") != 0)
            return cl_err_set(err, CL_ERR_INVALID,
                              "resources has an unknown key '%.60s' (only requests and limits)",
                              v->string);
    }
    cJSON *res = cJSON_CreateObject();
    const cJSON *req = cJSON_GetObjectItemCaseSensitive(in, "requests");
    const cJSON *lim = cJSON_GetObjectItemCaseSensitive(in, "limits");
    cJSON *r = req ? part(req, "requests", err) : NULL;
    cJSON *l = lim ? part(lim, "limits", err) : NULL;
    if ((req && r == NULL) || (lim && l == NULL)) {
        cJSON_Delete(r);
        cJSON_Delete(l);
        cJSON_Delete(res);
        return err ? err->code : CL_ERR_INVALID;
    }
    const cJSON *rv;
    cJSON_ArrayForEach(rv, r)
    {
        const cJSON *lv = cJSON_GetObjectItemCaseSensitive(l, rv->string);
        double a, b;
        if (lv != NULL && cl_quantity_parse(rv->valuestring, &a, NULL) == CL_OK &&
            cl_quantity_parse(lv->valuestring, &b, NULL) == CL_OK && a > b) {
            cl_err_set(err, CL_ERR_INVALID,
                       "resources.requests.%s (%s) is more than resources.limits.%s (%s)",
                       rv->string, rv->valuestring, rv->string, lv->valuestring);
            cJSON_Delete(r);
            cJSON_Delete(l);
            cJSON_Delete(res);
            return CL_ERR_INVALID;
        }
    }
    if (r != NULL)
        cJSON_AddItemToObject(res, "requests", r);
    if (l != NULL)
        cJSON_AddItemToObject(res, "limits", l);
    *out = res;
    return CL_OK;
}
