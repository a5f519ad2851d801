/*
 * table.c - aligned text tables (see table.h).
 *
 * Cells are kept as strings until table_print(), which is the only point
 * where every width is known.
 */
#include "table.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

struct table {
    size_t ncols;
    char **cells; /* row-major; the header is row 0 */
    size_t ncells, cap;
    unsigned char *right; /* per column */
    int err;
};

static void
push(struct table *t, char *s)
{
    if (t->err || !s) {
        free(s);
        t->err = 1;
        return;
    }
    if (t->ncells == t->cap) {
        size_t cap = t->cap ? t->cap * 2 : 64;
        char **p = realloc(t->cells, cap * sizeof(*p));
        if (!p) {
            free(s);
            t->err = 1;
            return;
        }
        t->cells = p;
        t->cap = cap;
    }
    t->cells[t->ncells++] = s;
}

struct table *
table_new(const char *const *headers, size_t ncols)
{
    struct table *t = calloc(1, sizeof(*t));

    if (!t || ncols == 0 || !(t->right = calloc(ncols, 1))) {
        free(t);
        return NULL;
    }
    t->ncols = ncols;
    for (size_t i = 0; i < ncols; i++)
        push(t, strdup(headers[i]));
    if (t->err) {
        table_free(t);
        return NULL;
    }
    return t;
}

void
table_free(struct table *t)
{
    if (!t)
        return;
    for (size_t i = 0; i < t->ncells; i++)
        free(t->cells[i]);
    free(t->cells);
    free(t->right);
    free(t);
}

void
table_align_right(struct table *t, size_t col)
{
    if (col < t->ncols)
        t->right[col] = 1;
}

void
table_cell(struct table *t, const char *fmt, ...)
{
    va_list ap;
    char *s = NULL;

    va_start(ap, fmt);
    if (vasprintf(&s, fmt, ap) < 0)
        s = NULL;
    va_end(ap);
    push(t, s);
}

size_t
table_rows(const struct table *t)
{
    return (t->ncells + t->ncols - 1) / t->ncols - 1;
}

void
table_print(const struct table *t, FILE *out)
{
    size_t *w = calloc(t->ncols, sizeof(*w)), len = 0;
    char *line = NULL;

    if (!w)
        return;
    for (size_t i = 0; i < t->ncells; i++) {
        size_t n = strlen(t->cells[i]);
        if (n > w[i % t->ncols])
            w[i % t->ncols] = n;
    }
    /* A row is built whole so that the padding of empty trailing cells can be cut. */
    for (size_t c = 0; c < t->ncols; c++)
        len += w[c] + 2;
    line = malloc(len + 2);
    for (size_t i = 0; line && i < t->ncells;) {
        size_t pos = 0;
        for (size_t c = 0; c < t->ncols && i < t->ncells; c++, i++) {
            const char *s = t->cells[i];
            size_t n = strlen(s), pad = w[c] - n;
            if (t->right[c]) {
                memset(line + pos, ' ', pad);
                pos += pad;
            }
            memcpy(line + pos, s, n);
            pos += n;
            if (!t->right[c]) {
                memset(line + pos, ' ', pad);
                pos += pad;
            }
            line[pos++] = ' ';
            line[pos++] = ' ';
        }
        while (pos > 0 && line[pos - 1] == ' ')
            pos--;
        line[pos++] = '\n';
        fwrite(line, 1, pos, out);
    }
    free(line);
    free(w);
}
