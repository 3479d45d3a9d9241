#include "metrics.h"
#include "log.h"
#include "util.h"

#include <event2/buffer.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#define RELAXED memory_order_relaxed

static unsigned value_count(const struct metric_label *l)
{
    unsigned n = 0;

    while (l->values[n] != NULL)
        n++;
    return n;
}

static unsigned nlabels(const struct metric *m)
{
    unsigned n = 0;

    while (n < METRIC_LABELS_MAX && m->label[n].name != NULL)
        n++;
    return n;
}

/* Cells a metric uses. */
static unsigned cells_of(const struct metric *m)
{
    unsigned n = 1;

    if (m->type == METRIC_TYPE_HISTOGRAM)
        return m->nbounds + 2;
    for (unsigned i = 0; i < nlabels(m); i++)
        n *= value_count(&m->label[i]);
    return n;
}

static int value_index(const struct metric_label *l, const char *v)
{
    if (v == NULL)
        return -1;
    for (int k = 0; l->values[k] != NULL; k++)
        if (ab_strcaseeq(l->values[k], v))
            return k;
    return -1;
}

/* The cell of one label combination, or -1 with the label at fault. */
static int find_cell(const struct metric *m, const char *v1, const char *v2,
                     unsigned *bad)
{
    const char *v[METRIC_LABELS_MAX] = { v1, v2 };
    int idx = 0;

    for (unsigned i = 0; i < nlabels(m); i++) {
        int k = value_index(&m->label[i], v[i]);
        if (k < 0) {
            *bad = i;
            return -1;
        }
        idx = idx * (int)value_count(&m->label[i]) + k;
    }
    return idx;
}

/* The same for a writer: a value not in the list is logged, once. */
static int cell_index(struct metric *m, const char *v1, const char *v2)
{
    const char *v[METRIC_LABELS_MAX] = { v1, v2 };
    unsigned bad = 0;
    int idx = find_cell(m, v1, v2, &bad);

    if (idx < 0 && !atomic_exchange_explicit(&m->warned, true, RELAXED))
        log_warn("event=metric_unknown_label metric=%s%s label=%s value=%s",
                 METRIC_PREFIX, m->name, m->label[bad].name,
                 log_esc(v[bad] ? v[bad] : "(none)"));
    return idx;
}

void metric_add(struct metric *m, long long n, const char *v1, const char *v2)
{
    int i;

    if (m == NULL || m->type == METRIC_TYPE_HISTOGRAM)
        return;
    if ((i = cell_index(m, v1, v2)) >= 0)
        atomic_fetch_add_explicit(&m->cell[i], n, RELAXED);
}

void metric_inc(struct metric *m, const char *v1, const char *v2)
{
    metric_add(m, 1, v1, v2);
}

void metric_set(struct metric *m, long long value, const char *v1,
                const char *v2)
{
    int i;

    if (m == NULL || m->type != METRIC_TYPE_GAUGE)
        return;
    if ((i = cell_index(m, v1, v2)) >= 0)
        atomic_store_explicit(&m->cell[i], value, RELAXED);
}

void metric_observe(struct metric *m, double seconds)
{
    unsigned b = 0;

    if (m == NULL || m->type != METRIC_TYPE_HISTOGRAM)
        return;
    if (!(seconds >= 0))
        seconds = 0;              /* a clock step back, or NaN */
    while (b < m->nbounds && seconds > m->bounds[b])
        b++;                      /* b == nbounds: the +Inf bucket */
    atomic_fetch_add_explicit(&m->cell[b], 1, RELAXED);
    atomic_fetch_add_explicit(&m->cell[m->nbounds + 1],
                              (long long)(seconds * 1e9 + 0.5), RELAXED);
}

long long metric_value(const struct metric *m, const char *v1, const char *v2)
{
    long long n = 0;
    int i;

    if (m == NULL)
        return 0;
    if (m->type == METRIC_TYPE_HISTOGRAM) {
        for (unsigned b = 0; b <= m->nbounds; b++)
            n += atomic_load_explicit(&m->cell[b], RELAXED);
        return n;
    }
    i = find_cell(m, v1, v2, &(unsigned){ 0 });
    if (i < 0)
        return 0;
    return atomic_load_explicit(&m->cell[i], RELAXED);
}

/* ---- rules -------------------------------------------------------------- */

static bool valid_name(const char *s, bool colons)
{
    if (s == NULL || *s == '\0' || (*s >= '0' && *s <= '9'))
        return false;
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') ||
              (*s >= '0' && *s <= '9') || *s == '_' || (colons && *s == ':')))
            return false;
    return true;
}

static bool ends_with(const char *s, const char *tail)
{
    size_t n = strlen(s), t = strlen(tail);

    return n >= t && strcmp(s + n - t, tail) == 0;
}

static int check_labels(const struct metric *m, char *err, size_t errlen)
{
    for (unsigned i = 0; i < nlabels(m); i++) {
        const struct metric_label *l = &m->label[i];
        if (!valid_name(l->name, false) || strncmp(l->name, "__", 2) == 0 ||
            value_count(l) == 0) {
            snprintf(err, errlen, "%s: label '%s' is not a label name with "
                     "values", m->name, l->name);
            return -1;
        }
        for (unsigned a = 0; l->values[a]; a++)
            for (unsigned b = a + 1; l->values[b]; b++)
                if (ab_strcaseeq(l->values[a], l->values[b])) {
                    snprintf(err, errlen, "%s: label %s has '%s' twice",
                             m->name, l->name, l->values[a]);
                    return -1;
                }
    }
    return 0;
}

static int check_bounds(const struct metric *m, char *err, size_t errlen)
{
    if (nlabels(m) > 0 || m->nbounds == 0) {
        snprintf(err, errlen, "%s: a histogram has bounds and no labels",
                 m->name);
        return -1;
    }
    for (unsigned b = 0; b < m->nbounds; b++)
        if (!isfinite(m->bounds[b]) || (b > 0 &&
                                        m->bounds[b] <= m->bounds[b - 1])) {
            snprintf(err, errlen, "%s: bounds must be finite and ascending",
                     m->name);
            return -1;
        }
    return 0;
}

int metric_check(const struct metric *m, char *err, size_t errlen)
{
    bool counter = m->type == METRIC_TYPE_COUNTER;

    if (!valid_name(m->name, true) || m->help == NULL || m->help[0] == '\0') {
        snprintf(err, errlen, "'%s' is not a metric name with a help text",
                 m->name ? m->name : "(null)");
        return -1;
    }
    if (counter != ends_with(m->name, "_total")) {
        snprintf(err, errlen, "%s: counters, and only counters, end in "
                 "_total", m->name);
        return -1;
    }
    if (check_labels(m, err, errlen) < 0)
        return -1;
    if (m->type == METRIC_TYPE_HISTOGRAM && check_bounds(m, err, errlen) < 0)
        return -1;
    if (cells_of(m) > METRIC_CELLS_MAX) {
        snprintf(err, errlen, "%s: %u values, more than METRIC_CELLS_MAX",
                 m->name, cells_of(m));
        return -1;
    }
    return 0;
}

/* ---- the text exposition ------------------------------------------------
 *
 * https://prometheus.io/docs/instrumenting/exposition_formats/ (0.0.4):
 * help text escapes '\\' and newline; label values also '"'.
 */

static void add_escaped(struct evbuffer *out, const char *s, bool quote)
{
    for (; *s; s++) {
        if (*s == '\\')
            evbuffer_add(out, "\\\\", 2);
        else if (*s == '\n')
            evbuffer_add(out, "\\n", 2);
        else if (quote && *s == '"')
            evbuffer_add(out, "\\\"", 2);
        else
            evbuffer_add(out, s, 1);
    }
}

static const char *type_name(enum metric_type t)
{
    return t == METRIC_TYPE_COUNTER ? "counter" :
           t == METRIC_TYPE_GAUGE ? "gauge" : "histogram";
}

static void render_header(const struct metric *m, struct evbuffer *out)
{
    evbuffer_add_printf(out, "# HELP %s%s ", METRIC_PREFIX, m->name);
    add_escaped(out, m->help, false);
    evbuffer_add_printf(out, "\n# TYPE %s%s %s\n", METRIC_PREFIX, m->name,
                        type_name(m->type));
}

/* One sample line: name{label="value",...} value */
static void render_cell(const struct metric *m, unsigned cell,
                        struct evbuffer *out)
{
    unsigned n = nlabels(m), idx[METRIC_LABELS_MAX] = { 0 }, rest = cell;

    for (unsigned i = n; i-- > 0;) {
        unsigned count = value_count(&m->label[i]);
        idx[i] = rest % count;
        rest /= count;
    }
    evbuffer_add_printf(out, "%s%s", METRIC_PREFIX, m->name);
    for (unsigned i = 0; i < n; i++) {
        evbuffer_add_printf(out, "%c%s=\"", i == 0 ? '{' : ',',
                            m->label[i].name);
        add_escaped(out, m->label[i].values[idx[i]], true);
        evbuffer_add(out, "\"", 1);
    }
    evbuffer_add_printf(out, "%s %lld\n", n > 0 ? "}" : "",
                        atomic_load_explicit(&m->cell[cell], RELAXED));
}

static void render_histogram(const struct metric *m, struct evbuffer *out)
{
    long long total = 0, ns;

    for (unsigned b = 0; b < m->nbounds; b++) {
        total += atomic_load_explicit(&m->cell[b], RELAXED);
        evbuffer_add_printf(out, "%s%s_bucket{le=\"%g\"} %lld\n",
                            METRIC_PREFIX, m->name, m->bounds[b], total);
    }
    total += atomic_load_explicit(&m->cell[m->nbounds], RELAXED);
    evbuffer_add_printf(out, "%s%s_bucket{le=\"+Inf\"} %lld\n",
                        METRIC_PREFIX, m->name, total);
    ns = atomic_load_explicit(&m->cell[m->nbounds + 1], RELAXED);
    evbuffer_add_printf(out, "%s%s_sum %lld.%09lld\n%s%s_count %lld\n",
                        METRIC_PREFIX, m->name, ns / 1000000000,
                        ns % 1000000000, METRIC_PREFIX, m->name, total);
}

void metrics_render(struct metric *const *set, size_t n, struct evbuffer *out)
{
    for (size_t i = 0; i < n; i++) {
        const struct metric *m = set[i];
        render_header(m, out);
        if (m->type == METRIC_TYPE_HISTOGRAM) {
            render_histogram(m, out);
            continue;
        }
        for (unsigned c = 0; c < cells_of(m); c++)
            render_cell(m, c, out);
    }
}
