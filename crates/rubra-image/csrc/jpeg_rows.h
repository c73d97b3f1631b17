/*
 * The row reader's C API (jpeg_rows.c), as src/libjpeg.rs declares it; also
 * used by the differential fuzzers under fuzz/.
 */
#ifndef RUBRA_JPEG_ROWS_H
#define RUBRA_JPEG_ROWS_H

#include <stddef.h>
#include <stdint.h>

/* Status codes, mirrored in src/libjpeg.rs. */
#define RUBRA_JPEG_OK 0
#define RUBRA_JPEG_CORRUPT 1
#define RUBRA_JPEG_UNSUPPORTED 2
#define RUBRA_JPEG_TOO_LARGE 3
#define RUBRA_JPEG_TRUNCATED 4
#define RUBRA_JPEG_RETRY 5 /* decode again without the fast Huffman decoder */

/* Output layouts, mirrored in src/libjpeg.rs. */
#define RUBRA_JPEG_GRAY 1
#define RUBRA_JPEG_RGB 3
#define RUBRA_JPEG_CMYK 4

/* The most rows one read hands out (the Rust side's buffer holds this many). */
#define RUBRA_JPEG_MAX_ROWS 16

struct rubra_jpeg;

struct rubra_jpeg *rubra_jpeg_new(void);
void rubra_jpeg_free(struct rubra_jpeg *h);
const char *rubra_jpeg_message(const struct rubra_jpeg *h);
int rubra_jpeg_start(struct rubra_jpeg *h, const uint8_t *data, size_t len, long max_memory,
                     int fast, int max_scans, uint32_t expect_width, uint32_t expect_height,
                     uint32_t *width, uint32_t *height, int *layout);
int rubra_jpeg_read(struct rubra_jpeg *h, uint8_t *buf, size_t stride, uint32_t max_rows,
                    uint32_t *rows);
int rubra_jpeg_finish(struct rubra_jpeg *h);

#endif
