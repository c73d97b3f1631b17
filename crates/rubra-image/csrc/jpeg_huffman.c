/*
 * A faster Huffman decoder for baseline sequential JPEG, put in place of
 * libjpeg-turbo's own entropy decoder (`cinfo->entropy`) once decompression has
 * started. libjpeg-turbo 2.1 spends about two thirds of a photo's decode in its
 * Huffman decoder (perf of `POST /red`): it looks codes up 8 bits at a time,
 * reads the extra bits of each coefficient separately, tests every byte it
 * loads for 0xFF, and takes a slow byte-at-a-time path for the whole of a file
 * with restart markers. This one looks 10 bits ahead and finds a coefficient's
 * code, run and value in one lookup when they fit, and loads 8 bytes at a time
 * when none of them is 0xFF. Everything after the entropy decoder (the
 * dequantisation and IDCT, upsampling, colour conversion) stays libjpeg's, and
 * the coefficients are the same, so the pixels are exactly libjpeg's.
 *
 * Only clean data is decoded here. At the first sign of anything else (a code
 * no table has, a marker or the end of the data before the last block, a
 * restart marker missing or out of order, data left before one) the decoder
 * gives up: the caller decodes the file again from the start with libjpeg's
 * own decoder, so a damaged file decodes exactly as libjpeg decodes it.
 */
#include "jpeg_huffman.h"

#include <string.h>

/* The entropy decoder struct re-declared in jpeg_huffman.h is libjpeg-turbo's
 * (jconfig.h names the library); another libjpeg (IJG 9 added a member) must
 * not get this decoder installed. */
#ifdef LIBJPEG_TURBO_VERSION_NUMBER
#define RUBRA_HUFF_SUPPORTED 1
#else
#define RUBRA_HUFF_SUPPORTED 0
#endif

/* The next 8 bytes as a big-endian number, on any host. */
static inline uint64_t load_be64(const uint8_t *p) {
  uint64_t w;
  memcpy(&w, p, 8);
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
  return w;
#else
  return __builtin_bswap64(w);
#endif
}

/* Zigzag position k → natural position, at index k + 1 (a WHOLE entry steps k
 * past the coefficient before storing it). Past the last coefficient every
 * entry is 63: a corrupt run lands there, as with libjpeg's own table, which
 * has 16 extra entries; an end of block steps 64 and stores a zero there,
 * where nothing was stored yet (k <= 63 before it). */
static const uint8_t natural_order_after[1 + 64 + 64] = {
    0,  0,  1,  8,  16, 9,  2,  3,  10, 17, 24, 32, 25, 18, 11, 4,  5,  12, 19, 26, 33, 40,
    48, 41, 34, 27, 20, 13, 6,  7,  14, 21, 28, 35, 42, 49, 56, 57, 50, 43, 36, 29, 22, 15,
    23, 30, 37, 44, 51, 58, 59, 52, 45, 38, 31, 39, 46, 53, 60, 61, 54, 47, 55, 62, 63, 63,
    63, 63, 63, 63, 63, 63, 63, 63, 63, 63, 63, 63, 63, 63, 63, 63, 63, 63, 63, 63, 63, 63,
    63, 63, 63, 63, 63, 63, 63, 63, 63, 63, 63, 63, 63, 63, 63, 63, 63, 63, 63, 63, 63, 63,
    63, 63, 63, 63, 63, 63, 63, 63, 63, 63, 63, 63, 63, 63, 63, 63, 63, 63, 63};

#define FAST RUBRA_HUFF_FAST_BITS

/* Kinds of lookup entries (bits 6 and 7; 0x80 is unused). */
#define WHOLE 0x00 /* AC: value << 16 | (run + 1) << 8 | code and extra bits */
#define SYMBOL 0x40 /* symbol << 8 | SYMBOL | code bits (0: a longer code) */
#define KIND 0xC0

/* JPEG's EXTEND (Figure F.12): the `s`-bit value `v` as a signed coefficient. */
static inline int32_t extend(uint32_t v, int s) {
  return (int32_t)v - (int32_t)((v < (1u << (s - 1))) ? (1u << s) - 1 : 0);
}

/* Builds the lookup table of one DHT table. A code of up to FAST bits whose
 * coefficient's extra bits fit too is one WHOLE entry (the common case: run,
 * value and bits to skip in one lookup); the end of block is a WHOLE entry that
 * stores a zero and steps k past the end; other codes of up to FAST bits are
 * SYMBOL entries; the rest are looked up code length by code length. Returns 0
 * when the table is not a valid canonical code (libjpeg has refused those
 * already; checked again). */
static int build_table(const JHUFF_TBL *spec, int is_ac, struct rubra_huff_table *t) {
  uint32_t code = 0;
  int p = 0;
  for (int i = 0; i < (1 << FAST); i++)
    t->fast[i] = SYMBOL; /* a longer code */
  for (int l = 1; l <= 16; l++) {
    int n = spec->bits[l];
    if (p + n > 256 || code + (uint32_t)n > (1u << l))
      return 0;
    t->valoffset[l] = p - (int32_t)code;
    t->maxcode[l] = n ? (int32_t)(code + (uint32_t)n) - 1 : -1;
    for (int i = 0; i < n; i++, p++, code++) {
      int sym = spec->huffval[p];
      if (!is_ac && sym > 15)
        return 0;
      if (l > FAST)
        continue;
      uint32_t first = code << (FAST - l), count = 1u << (FAST - l);
      for (uint32_t j = 0; j < count; j++) {
        uint32_t peek = first + j;
        int r = sym >> 4, s = sym & 15;
        int32_t e = sym << 8 | SYMBOL | l;
        if (is_ac && sym == 0) {
          e = 64 << 8 | WHOLE | l; /* end of block */
        } else if (is_ac && s != 0 && l + s <= FAST) {
          uint32_t v = (peek >> (FAST - l - s)) & ((1u << s) - 1);
          e = (int32_t)((uint32_t)extend(v, s) << 16) | (r + 1) << 8 | WHOLE | (l + s);
        }
        t->fast[peek] = e;
      }
    }
    code <<= 1;
  }
  t->maxcode[17] = 0x7fffffff; /* every 17-bit search stops here: a bad code */
  memcpy(t->huffval, spec->huffval, sizeof t->huffval);
  return 1;
}

/* The decoder's registers while it decodes an MCU. */
struct bits {
  const uint8_t *data;
  size_t len, pos;
  uint64_t buf;
  int nbits, fake, stopped;
};

/* Loads bytes until at least 57 bits are buffered, or zeros past a marker or
 * the end of the data (counted in `fake`). Called with fewer than 32 bits.
 * The registers go in and out by value, so that the decode loop keeps them in
 * CPU registers (a pointer to them would keep them in memory). */
__attribute__((noinline)) static struct bits refill_slow(struct bits b) {
  while (b.nbits <= 56) {
    if (b.stopped || b.pos >= b.len) {
      b.stopped = 1;
      int add = 64 - b.nbits;
      b.nbits += add; /* the buffer's low bits are already zero */
      b.fake += add;
      return b;
    }
    uint64_t c = b.data[b.pos];
    if (c == 0xFF) {
      if (b.pos + 1 < b.len && b.data[b.pos + 1] == 0) {
        b.pos += 2; /* FF 00: a data byte 0xFF */
      } else {
        b.stopped = 1; /* a marker (or fill bytes before one) */
        continue;
      }
    } else {
      b.pos++;
    }
    b.buf |= c << (56 - b.nbits);
    b.nbits += 8;
  }
  return b;
}

static inline void refill(struct bits *b) {
  if (b->pos + 8 <= b->len) {
    uint64_t w = load_be64(b->data + b->pos);
    /* Any byte 0xFF? (a zero byte in ~w) */
    if ((((~w) - 0x0101010101010101ull) & w & 0x8080808080808080ull) == 0 && !b->stopped) {
      int k = (63 - b->nbits) >> 3; /* whole bytes that fit: 4..7 */
      w &= ~0ull << (64 - 8 * k);
      b->buf |= w >> b->nbits;
      b->nbits += 8 * k;
      b->pos += (size_t)k;
      return;
    }
  }
  *b = refill_slow(*b);
}

static inline uint32_t take(struct bits *b, int n) {
  uint32_t v = (uint32_t)(b->buf >> (64 - n));
  b->buf <<= n;
  b->nbits -= n;
  return v;
}

/* A code longer than the lookahead at the top of `buf`, as a SYMBOL entry
 * (symbol << 8 | SYMBOL | length); -1 for a bad code. Takes the buffer by value
 * so that the decode loop's registers stay out of memory. */
__attribute__((noinline)) static int32_t long_code(uint64_t buf,
                                                   const struct rubra_huff_table *t) {
  int l = FAST + 1;
  int32_t code = (int32_t)(buf >> (64 - l));
  while (code > t->maxcode[l]) {
    l++;
    code = (int32_t)(buf >> (64 - l));
  }
  if (l > 16)
    return -1;
  return t->huffval[(code + t->valoffset[l]) & 0xff] << 8 | SYMBOL | l;
}

/* The symbol of a SYMBOL entry (at least 32 bits buffered), -1 for a bad code. */
static inline int symbol(struct bits *b, const struct rubra_huff_table *t, int32_t e) {
  if ((e & 31) == 0) {
    e = long_code(b->buf, t);
    if (e < 0)
      return -1;
  }
  int l = e & 31;
  b->buf <<= l;
  b->nbits -= l;
  return e >> 8;
}

/* The raw position of the first byte none of whose bits were consumed. */
static size_t unconsumed_at(const struct bits *b) {
  size_t pos = b->pos;
  for (int n = (b->nbits - b->fake) >> 3; n > 0 && pos > 0; n--) {
    pos--;
    if (b->data[pos] == 0 && pos > 0 && b->data[pos - 1] == 0xFF)
      pos--; /* the 00 of a stuffed FF 00 */
  }
  return pos;
}

/* Moves past the restart marker that must come next (after fill bytes). */
static int restart(struct rubra_huff *h, struct bits *b) {
  if (b->nbits - b->fake >= 8)
    return 0; /* data left before the marker: libjpeg skips it with a warning */
  size_t pos = b->pos;
  while (pos + 1 < b->len && b->data[pos] == 0xFF && b->data[pos + 1] == 0xFF)
    pos++;
  if (pos + 1 >= b->len || b->data[pos] != 0xFF || b->data[pos + 1] != 0xD0 + h->next_rst)
    return 0;
  b->pos = pos + 2;
  b->buf = 0;
  b->nbits = 0;
  b->fake = 0;
  b->stopped = 0;
  h->next_rst = (h->next_rst + 1) & 7;
  memset(h->pred, 0, sizeof h->pred);
  return 1;
}

static boolean decode_mcu(j_decompress_ptr cinfo, JBLOCKROW *MCU_data) {
  struct rubra_huff *h = (struct rubra_huff *)cinfo->entropy;
  struct bits b = {h->data, h->len, h->pos, h->buf, h->nbits, h->fake, h->stopped};
  if (cinfo->restart_interval) {
    if (h->restarts_to_go == 0) {
      if (!restart(h, &b)) {
        h->give_up(cinfo);
        return FALSE;
      }
      h->restarts_to_go = cinfo->restart_interval;
    }
    h->restarts_to_go--;
  }
  for (int blkn = 0; blkn < h->blocks; blkn++) {
    JCOEF *blk = MCU_data ? MCU_data[blkn][0] : h->scratch;
    const struct rubra_huff_table *ac = h->ac[blkn];
    if (b.nbits < 32)
      refill(&b);
    int s = symbol(&b, h->dc[blkn], h->dc[blkn]->fast[b.buf >> (64 - FAST)]);
    if (s < 0) {
      h->give_up(cinfo);
      return FALSE; /* not reached: give_up does not return */
    }
    int32_t diff = s ? extend(take(&b, s), s) : 0;
    int ci = h->comp[blkn];
    /* Wrapping like libjpeg's int arithmetic on hostile files, without C's UB. */
    h->pred[ci] = (int32_t)((uint32_t)h->pred[ci] + (uint32_t)diff);
    blk[0] = (JCOEF)h->pred[ci];
    for (int k = 1; k < 64;) {
      if (b.nbits < 32)
        refill(&b);
      int32_t e = ac->fast[b.buf >> (64 - FAST)];
      if ((e & KIND) == WHOLE) {
        int l = e & 31;
        b.buf <<= l;
        b.nbits -= l;
        k += (e >> 8) & 127;
        blk[natural_order_after[k]] = (JCOEF)(e >> 16);
        continue;
      }
      int rs = symbol(&b, ac, e);
      if (rs < 0) {
        h->give_up(cinfo);
        return FALSE;
      }
      int r = rs >> 4;
      s = rs & 15;
      if (s) {
        k += r + 1;
        blk[natural_order_after[k]] = (JCOEF)extend(take(&b, s), s);
      } else if (r == 15) {
        k += 16;
      } else {
        break; /* an end of block behind a longer code */
      }
    }
  }
  if (b.fake > b.nbits) {
    h->give_up(cinfo); /* decoded zeros past a marker or the end of the data */
    return FALSE;
  }
  h->pos = b.pos;
  h->buf = b.buf;
  h->nbits = b.nbits;
  h->fake = b.fake;
  h->stopped = b.stopped;
  if (--h->mcus_left == 0) {
    /* The scan is done: hand libjpeg the data from the first byte not read, as
     * its own decoder would (the marker reader goes on from there to EOI). */
    size_t at = unconsumed_at(&b);
    cinfo->src->next_input_byte = h->data + at;
    cinfo->src->bytes_in_buffer = h->len - at;
  }
  return TRUE;
}

static void start_pass(j_decompress_ptr cinfo) {
  /* A second scan in a single-scan file is refused by libjpeg before this. */
  ((struct rubra_huff *)cinfo->entropy)->give_up(cinfo);
}

int rubra_huff_install(j_decompress_ptr cinfo, struct rubra_huff *h,
                       void (*give_up)(j_decompress_ptr cinfo)) {
  if (!RUBRA_HUFF_SUPPORTED || cinfo->progressive_mode || cinfo->arith_code || cinfo->data_precision != 8 ||
      cinfo->comps_in_scan != cinfo->num_components || cinfo->comps_in_scan > MAX_COMPS_IN_SCAN ||
      cinfo->Ss != 0 || cinfo->Se != DCTSIZE2 - 1 || cinfo->Ah != 0 || cinfo->Al != 0 ||
      cinfo->input_scan_number != 1 || cinfo->input_iMCU_row != 0 ||
      cinfo->output_scanline != 0 || cinfo->blocks_in_MCU < 1 ||
      cinfo->blocks_in_MCU > D_MAX_BLOCKS_IN_MCU || cinfo->src == NULL ||
      cinfo->scale_num != cinfo->scale_denom)
    return 0;
  memset(h, 0, offsetof(struct rubra_huff, tables));
  /* Which tables the scan uses, each built once. */
  int built[2][NUM_HUFF_TBLS] = {{0}};
  for (int ci = 0; ci < cinfo->comps_in_scan; ci++) {
    const jpeg_component_info *comp = cinfo->cur_comp_info[ci];
    if (comp == NULL || comp->dc_tbl_no < 0 || comp->dc_tbl_no >= NUM_HUFF_TBLS ||
        comp->ac_tbl_no < 0 || comp->ac_tbl_no >= NUM_HUFF_TBLS)
      return 0;
    for (int is_ac = 0; is_ac < 2; is_ac++) {
      int no = is_ac ? comp->ac_tbl_no : comp->dc_tbl_no;
      const JHUFF_TBL *spec = is_ac ? cinfo->ac_huff_tbl_ptrs[no] : cinfo->dc_huff_tbl_ptrs[no];
      if (built[is_ac][no])
        continue;
      if (spec == NULL || !build_table(spec, is_ac, &h->tables[is_ac * NUM_HUFF_TBLS + no]))
        return 0;
      built[is_ac][no] = 1;
    }
  }
  h->blocks = cinfo->blocks_in_MCU;
  for (int blkn = 0; blkn < h->blocks; blkn++) {
    int ci = cinfo->MCU_membership[blkn];
    if (ci < 0 || ci >= cinfo->comps_in_scan)
      return 0;
    const jpeg_component_info *comp = cinfo->cur_comp_info[ci];
    h->comp[blkn] = ci;
    h->dc[blkn] = &h->tables[comp->dc_tbl_no];
    h->ac[blkn] = &h->tables[NUM_HUFF_TBLS + comp->ac_tbl_no];
  }
  h->mcus_left = (unsigned long long)cinfo->MCUs_per_row * cinfo->MCU_rows_in_scan;
  if (h->mcus_left == 0)
    return 0;
  h->data = cinfo->src->next_input_byte;
  h->len = cinfo->src->bytes_in_buffer;
  h->restarts_to_go = cinfo->restart_interval;
  h->give_up = give_up;
  h->pub.start_pass = start_pass;
  h->pub.decode_mcu = decode_mcu;
  h->pub.insufficient_data = FALSE;
  cinfo->entropy = &h->pub;
  return 1;
}
