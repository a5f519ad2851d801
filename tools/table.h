/*
 * table.h - aligned text tables for the `sprocket` operator commands, in
 * the shape mqadmin prints them: a header row whose cells start with '#',
 * then one row per item, columns separated by two spaces and padded to
 * the widest cell (counted in bytes), the last column never padded.
 *
 * Cells are added left to right; a row is complete after <ncols> cells.
 * An allocation failure is sticky: later cells are dropped and
 * table_print() prints what was kept, so callers need not check each
 * cell (the tool exits right after printing anyway).
 */
#ifndef SPK_TOOLS_TABLE_H
#define SPK_TOOLS_TABLE_H

#include <stddef.h>
#include <stdio.h>

struct table;

/* A table with the <ncols> header cells <headers> (borrowed; copied). NULL when out of memory. */
struct table *table_new(const char *const *headers, size_t ncols);
void table_free(struct table *t);

/* Right-aligns column <col> (numbers), header included. */
void table_align_right(struct table *t, size_t col);

/* Appends the next cell. */
void table_cell(struct table *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Rows added so far (complete or not). */
size_t table_rows(const struct table *t);

void table_print(const struct table *t, FILE *out);

#endif /* SPK_TOOLS_TABLE_H */
