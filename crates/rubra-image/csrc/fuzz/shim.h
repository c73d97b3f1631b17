/*
 * What the two differential fuzzers share: a seeded generator and one decode
 * through the row reader (jpeg_rows.h), as src/libjpeg.rs drives it.
 */
#ifndef RUBRA_FUZZ_SHIM_H
#define RUBRA_FUZZ_SHIM_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "jpeg_rows.h"

/* xorshift64; a harness may mix a seed into `state` first. */
static uint64_t state = 88172645463325252ull;
static uint64_t next(void) {
  state ^= state << 13;
  state ^= state >> 7;
  state ^= state << 17;
  return state;
}

/* Decodes `data`, with or without the fast Huffman decoder; returns the row
 * reader's status (-1: no decompressor, -2: rows stopped early) and a hash of
 * every sample. With `verbose`, libjpeg's message of a failure goes to stderr. */
static int decode(const uint8_t *data, size_t len, int fast, uint32_t w0, uint32_t h0,
                  uint64_t *hash, int verbose) {
  struct rubra_jpeg *h = rubra_jpeg_new();
  uint32_t w, height, seen = 0, got = 0;
  int layout, status;
  *hash = 0;
  if (h == NULL)
    return -1;
  status = rubra_jpeg_start(h, data, len, 200000000L, fast, 500, w0, h0, &w, &height, &layout);
  if (status == RUBRA_JPEG_OK) {
    size_t stride = (size_t)w * (size_t)layout;
    uint8_t *rows = malloc(stride * RUBRA_JPEG_MAX_ROWS);
    while (seen < height) {
      status = rubra_jpeg_read(h, rows, stride, RUBRA_JPEG_MAX_ROWS, &got);
      if (status != RUBRA_JPEG_OK || got == 0)
        break;
      for (size_t i = 0; i < stride * got; i++)
        *hash = *hash * 1099511628211ull + rows[i];
      seen += got;
    }
    if (status == RUBRA_JPEG_OK)
      status = got == 0 && seen < height ? -2 : rubra_jpeg_finish(h);
    free(rows);
  }
  if (status != RUBRA_JPEG_OK && verbose)
    fprintf(stderr, "msg %d %s\n", status, rubra_jpeg_message(h));
  rubra_jpeg_free(h);
  return status;
}

#endif
