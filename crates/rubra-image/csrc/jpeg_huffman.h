/*
 * A faster Huffman decoder for baseline sequential JPEG, installed in place of
 * libjpeg-turbo's own (see jpeg_huffman.c). Used by jpeg_rows.c only.
 */
#ifndef RUBRA_JPEG_HUFFMAN_H
#define RUBRA_JPEG_HUFFMAN_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <jpeglib.h>

/* Bits looked up at once. 10 bits hold most codes of a photo's tables with
 * their extra bits; a table is 1 024 entries of each kind (6 KB). */
#define RUBRA_HUFF_FAST_BITS 10

struct rubra_huff_table {
  /* Looked up by the next RUBRA_HUFF_FAST_BITS bits of the data (see `build_table`
   * in jpeg_huffman.c for the layout); 0 for the prefix of a longer code. */
  int32_t fast[1 << RUBRA_HUFF_FAST_BITS];
  /* The canonical decode of longer codes (JPEG's Figure F.16): the largest
   * code of each length (-1 if none; maxcode[17] is a sentinel), and the
   * offset from a code of length l to its symbol's index in huffval. */
  int32_t maxcode[18];
  int32_t valoffset[17];
  uint8_t huffval[256];
};

/* libjpeg's entropy decoder interface, as its internal jpegint.h declares it
 * (unchanged from IJG libjpeg 6b through libjpeg-turbo 3; jpeglib.h only
 * names it). */
struct jpeg_entropy_decoder {
  void (*start_pass)(j_decompress_ptr cinfo);
  boolean (*decode_mcu)(j_decompress_ptr cinfo, JBLOCKROW *MCU_data);
  boolean insufficient_data;
};

struct rubra_huff {
  /* What cinfo->entropy points to once installed: must stay first. */
  struct jpeg_entropy_decoder pub;
  void (*give_up)(j_decompress_ptr cinfo);
  /* The scan's entropy-coded data, from the first byte after the SOS header. */
  const uint8_t *data;
  size_t len, pos;
  /* Bit buffer, MSB first; `nbits` bits are valid, of which the last `fake`
   * are zeros fed after a marker or the end of the data. */
  uint64_t buf;
  int nbits, fake;
  int stopped; /* a marker or the end of the data was reached */
  int32_t pred[MAX_COMPS_IN_SCAN];
  unsigned restarts_to_go, next_rst;
  unsigned long long mcus_left;
  int blocks;
  int comp[D_MAX_BLOCKS_IN_MCU];
  const struct rubra_huff_table *dc[D_MAX_BLOCKS_IN_MCU], *ac[D_MAX_BLOCKS_IN_MCU];
  struct rubra_huff_table tables[2 * NUM_HUFF_TBLS];
  JBLOCK scratch;
};

/* Replaces the entropy decoder of `cinfo`, which must be right after a
 * successful jpeg_start_decompress, when the file is one this decoder handles
 * (8-bit baseline sequential Huffman, one interleaved scan, nothing decoded
 * yet). Returns 1 if installed, 0 if libjpeg keeps its own. `h` is allocated
 * by the caller and must live as long as `cinfo` decodes.
 *
 * When the data turns out to be anything but clean (a bad code, a marker or
 * the end before the last block, a wrong restart marker) the installed decoder
 * calls `give_up(cinfo)`, which must not return (the caller longjmps and decodes
 * the file again with libjpeg's own decoder, so corrupt files decode exactly as
 * libjpeg decodes them). */
int rubra_huff_install(j_decompress_ptr cinfo, struct rubra_huff *h,
                       void (*give_up)(j_decompress_ptr cinfo));

#endif
