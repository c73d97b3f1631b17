/*
 * Differential fuzzer of the fast Huffman decoder (csrc/jpeg_huffman.c), built
 * with AddressSanitizer and UndefinedBehaviorSanitizer by scripts/fuzz-jpeg-c.sh
 * (cargo-fuzz instruments Rust only, so the C side gets its own run).
 *
 * usage: huffman_diff ITERATIONS FILE.jpg...
 *
 * Each iteration damages a copy of a file (bits flipped, bytes set to 0xFF or
 * anything, the end cut, restart markers dropped in) and decodes it through the
 * shim twice: with the fast decoder (and, when it gives up, again without it,
 * as src/libjpeg.rs does) and with libjpeg's own decoder alone. The statuses
 * and every decoded sample must be the same. Exits 1 on any difference; the
 * sanitizers abort on any memory or UB error.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "shim.h"

int main(int argc, char **argv) {
  if (argc < 3) {
    fprintf(stderr, "usage: %s ITERATIONS FILE.jpg...\n", argv[0]);
    return 2;
  }
  long iterations = atol(argv[1]);
  int failed = 0;
  for (int f = 2; f < argc; f++) {
    FILE *fp = fopen(argv[f], "rb");
    if (fp == NULL || fseek(fp, 0, SEEK_END) != 0) {
      fprintf(stderr, "cannot read %s\n", argv[f]);
      return 2;
    }
    size_t n = (size_t)ftell(fp);
    rewind(fp);
    uint8_t *file = malloc(n), *copy = malloc(n);
    if (n < 400 || fread(file, 1, n, fp) != n) {
      fprintf(stderr, "%s: too short to damage\n", argv[f]);
      return 2;
    }
    fclose(fp);
    uint32_t w0 = 0, h0 = 0; /* the frame size, from SOF0/SOF1 */
    for (size_t i = 0; i + 8 < n; i++)
      if (file[i] == 0xFF && (file[i + 1] == 0xC0 || file[i + 1] == 0xC1)) {
        h0 = (uint32_t)file[i + 5] << 8 | file[i + 6];
        w0 = (uint32_t)file[i + 7] << 8 | file[i + 8];
        break;
      }
    long gave_up = 0, differences = 0;
    for (long it = 0; it < iterations; it++) {
      memcpy(copy, file, n);
      size_t len = n;
      for (int m = 1 + (int)(next() % 4); m > 0; m--) {
        size_t at = 300 + next() % (len - 300); /* past the headers, mostly */
        switch (next() % 5) {
        case 0: copy[at] ^= (uint8_t)(1u << (next() % 8)); break;
        case 1: copy[at] = 0xFF; break;
        case 2: copy[at] = (uint8_t)next(); break;
        case 3: len = at + 1 + next() % (len - at); break;
        default:
          copy[at] = 0xFF;
          if (at + 1 < len)
            copy[at + 1] = (uint8_t)(0xD0 + next() % 8);
        }
      }
      uint64_t fast_hash, plain_hash;
      int fast = decode(copy, len, 1, w0, h0, &fast_hash, 0);
      if (fast == RUBRA_JPEG_RETRY) {
        gave_up++;
        fast = decode(copy, len, 0, w0, h0, &fast_hash, 0);
      }
      int plain = decode(copy, len, 0, w0, h0, &plain_hash, 0);
      if (fast != plain || (fast == 0 && fast_hash != plain_hash)) {
        differences++;
        fprintf(stderr, "%s: iteration %ld: status %d vs %d, hash %llx vs %llx\n", argv[f], it,
                fast, plain, (unsigned long long)fast_hash, (unsigned long long)plain_hash);
      }
    }
    printf("%s: %ld damaged copies, %ld handed back to libjpeg, %ld differences\n", argv[f],
           iterations, gave_up, differences);
    failed |= differences != 0;
    free(file);
    free(copy);
  }
  return failed;
}
