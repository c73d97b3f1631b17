/*
 * Generating differential fuzzer of the fast Huffman decoder (csrc/jpeg_huffman.c),
 * built with AddressSanitizer and UBSan by scripts/fuzz-jpeg-c.sh.
 *
 * usage: huffman_gen ITERATIONS [SEED] [SAVE_DIR]
 *
 * huffman_diff.c damages a few real files; this one writes its own baseline
 * JPEGs, so that the shapes a real encoder never makes are covered too: random
 * Huffman tables (one code, only 16-bit codes, the whole code space used,
 * symbols no encoder writes), DC categories up to 15, runs past the last
 * coefficient, ZRL at the end of a block, 1 to 4 components with sampling
 * factors up to 4x4 and 10 blocks an MCU, 1-pixel rows and columns up to
 * 65 500, restart intervals (longer than the scan, fill bytes before a marker,
 * padding with zeros), tables defined twice before the scan, and what may follow
 * the scan (no EOI, garbage, a second SOS, DNL, a restart marker, a DHT, data
 * after EOI). About a third are then damaged: bits and bytes changed, stray
 * markers, FF FF 00 (a data byte 0xFF to libjpeg), a restart marker renumbered,
 * the data cut at a restart marker.
 *
 * Each file is decoded through the shim with the fast decoder (again without it
 * when it gives up) and with libjpeg's own decoder alone: statuses and every
 * sample must be the same. Pixels alone would hide a wrong coefficient in a
 * block that saturates (most do, with random DC values), so the coefficients are
 * compared too (coef_check). An undamaged file libjpeg decodes must be decoded
 * by the fast decoder to the end, so that the comparisons do not compare
 * libjpeg with itself. Exits 1 on any difference, writing the file to SAVE_DIR
 * if given.
 *
 * Environment: GEN_VERBOSE=1 prints each file's statuses and libjpeg's
 * messages; GEN_W and GEN_H fix the size and GEN_SHAPE (0-5) the code-length
 * shape of the tables, for timing runs.
 */
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "jpeg_huffman.h"
#include "shim.h"

static unsigned below(unsigned n) { return n ? (unsigned)(next() % n) : 0; }
static int chance(unsigned percent) { return below(100) < percent; }

/* A growable byte buffer. */
struct buf {
  uint8_t *p;
  size_t n, cap;
};
static void put(struct buf *b, unsigned c) {
  if (b->n == b->cap) {
    b->cap = b->cap ? 2 * b->cap : 4096;
    b->p = realloc(b->p, b->cap);
    if (b->p == NULL)
      abort();
  }
  b->p[b->n++] = (uint8_t)c;
}
static void put16(struct buf *b, unsigned v) {
  put(b, v >> 8);
  put(b, v & 255);
}

/* Entropy-coded bits, MSB first, 0xFF stuffed. */
struct bitw {
  struct buf *b;
  unsigned acc;
  int n;
};
static void bits(struct bitw *w, uint32_t v, int n) {
  for (int i = n - 1; i >= 0; i--) {
    w->acc = w->acc << 1 | ((v >> i) & 1);
    if (++w->n == 8) {
      put(w->b, w->acc);
      if (w->acc == 0xFF)
        put(w->b, 0);
      w->acc = 0;
      w->n = 0;
    }
  }
}
static void pad(struct bitw *w, int ones) {
  while (w->n)
    bits(w, ones, 1);
}

/* A Huffman table: counts per length, symbols, and each symbol's code. */
struct table {
  uint8_t counts[17];
  uint8_t val[256];
  int n;
  uint32_t code[256];
  int len[256];
  int eob; /* index of an end-of-block symbol (s = 0, r != 15), -1 if none */
};

static void make_table(struct table *t, int is_dc) {
  uint8_t pool[256];
  int n = 0;
  memset(t, 0, sizeof *t);
  if (is_dc) {
    for (int s = 0; s < 16; s++)
      if (s <= 11 ? chance(80) : chance(30))
        pool[n++] = (uint8_t)s;
    if (n == 0)
      pool[n++] = (uint8_t)below(16);
  } else {
    int want = chance(10) ? 1 : 1 + (int)below(chance(50) ? 40 : 256);
    uint8_t seen[256] = {0};
    if (chance(85)) {
      pool[n++] = 0x00;
      seen[0] = 1;
    }
    if (chance(60) && !seen[0xF0]) {
      pool[n++] = 0xF0;
      seen[0xF0] = 1;
    }
    while (n < want) {
      unsigned sym = chance(70) ? (below(16) << 4 | (1 + below(chance(80) ? 10 : 15)))
                                : below(256);
      if (!seen[sym]) {
        seen[sym] = 1;
        pool[n++] = (uint8_t)sym;
      }
      if (chance(2))
        break;
    }
  }
  /* Shuffle. */
  for (int i = n - 1; i > 0; i--) {
    int j = (int)below((unsigned)i + 1);
    uint8_t x = pool[i];
    pool[i] = pool[j];
    pool[j] = x;
  }
  /* Code lengths: canonical, never the all-ones code. */
  int shape = getenv("GEN_SHAPE") ? atoi(getenv("GEN_SHAPE")) : (int)below(6);
  uint32_t code = 0;
  int placed = 0;
  for (int l = 1; l <= 16; l++) {
    uint32_t cap = (1u << l) - 1 - code; /* codes left at this length, all-ones excluded */
    int left = n - placed, k;
    if (shape == 0) /* only 16-bit codes */
      k = l == 16 ? left : 0;
    else if (shape == 1) /* the whole code space, shortest first */
      k = (int)(cap < (uint32_t)left ? cap : (uint32_t)left);
    else if (shape == 2) /* everything at one random length ≥ what fits */
      k = (l >= 8 + (int)below(9) || l == 16) ? left : 0;
    else {
      uint32_t most = cap / 2 + (l == 16 ? cap / 2 + 1 : 0);
      if (most > (uint32_t)left)
        most = (uint32_t)left;
      k = chance(35) ? 0 : (int)below(most + 1);
      if (l == 16)
        k = (int)(cap < (uint32_t)left ? cap : (uint32_t)left);
    }
    if ((uint32_t)k > cap)
      k = (int)cap;
    t->counts[l] = (uint8_t)k;
    for (int i = 0; i < k; i++) {
      t->val[placed] = pool[placed];
      t->len[placed] = l;
      t->code[placed] = code++;
      placed++;
    }
    code <<= 1;
  }
  t->n = placed;
  if (placed == 0) { /* cannot happen for n ≥ 1, but keep a valid table */
    t->counts[1] = 1;
    t->val[0] = pool[0];
    t->len[0] = 1;
    t->code[0] = 0;
    t->n = 1;
  }
  t->eob = -1;
  for (int i = 0; i < t->n; i++)
    if (!is_dc && (t->val[i] & 15) == 0 && (t->val[i] >> 4) != 15 && (t->eob < 0 || chance(50)))
      t->eob = i;
}

static void write_dht(struct buf *b, const struct table *t, int class, int id) {
  put(b, 0xFF);
  put(b, 0xC4);
  put16(b, (unsigned)(2 + 17 + t->n));
  put(b, (unsigned)(class << 4 | id));
  for (int l = 1; l <= 16; l++)
    put(b, t->counts[l]);
  for (int i = 0; i < t->n; i++)
    put(b, t->val[i]);
}

static void write_symbol(struct bitw *w, const struct table *t, int i) {
  bits(w, t->code[i], t->len[i]);
}

/* One block: a DC difference and AC symbols until an end of block or k ≥ 64. */
static void write_block(struct bitw *w, const struct table *dc, const struct table *ac,
                        int sparse) {
  int i = (int)below((unsigned)dc->n);
  write_symbol(w, dc, i);
  int s = dc->val[i] & 15;
  if (s)
    bits(w, (uint32_t)next() & ((1u << s) - 1), s);
  for (int k = 1; k < 64;) {
    if (ac->eob >= 0 && (chance(sparse) || chance(4)))
      i = ac->eob;
    else
      i = (int)below((unsigned)ac->n);
    write_symbol(w, ac, i);
    int r = ac->val[i] >> 4;
    s = ac->val[i] & 15;
    if (s) {
      bits(w, (uint32_t)next() & ((1u << s) - 1), s);
      k += r + 1;
    } else if (r == 15) {
      k += 16;
    } else {
      break;
    }
  }
}

struct made {
  uint32_t w, h;
  size_t scan_start;
};

/* Writes a random baseline file into `b`. */
static struct made make_file(struct buf *b) {
  struct made m;
  int ncomp = chance(15) ? 1 : chance(80) ? 3 : chance(90) ? 4 : 2;
  int hs[4], vs[4], blocks;
  /* Sampling factors that divide the largest (libjpeg refuses fractional
   * sampling), at most 10 blocks an MCU but for a few. */
  static const int divisors[5][3] = {{0}, {1, 1, 1}, {1, 2, 2}, {1, 3, 3}, {1, 2, 4}};
  int hmax, vmax;
  do {
    hmax = 1 + (int)below(4);
    vmax = 1 + (int)below(4);
    blocks = 0;
    for (int c = 0; c < ncomp; c++) {
      int full = c == 0 || chance(20);
      hs[c] = full ? hmax : divisors[hmax][below(3)];
      vs[c] = full ? vmax : divisors[vmax][below(3)];
      blocks += hs[c] * vs[c];
    }
  } while (ncomp > 1 && blocks > 10 && !chance(2)); /* more: libjpeg refuses them */
  switch (below(8)) {
  case 0: m.w = 1; m.h = 1 + below(600); break;
  case 1: m.w = 1 + below(600); m.h = 1; break;
  case 2: m.w = 1 + below(8); m.h = 1 + below(8); break;
  case 3:
    if (chance(3)) { /* the tallest and widest libjpeg takes */
      m.w = chance(50) ? 65500 : 1 + below(16);
      m.h = m.w == 65500 ? 1 + below(16) : 65500;
      break;
    }
    /* fall through */
  default: m.w = 1 + below(120); m.h = 1 + below(120);
  }
  if (getenv("GEN_W") && getenv("GEN_H")) { /* timing runs: one size */
    m.w = (uint32_t)atoi(getenv("GEN_W"));
    m.h = (uint32_t)atoi(getenv("GEN_H"));
  }
  put(b, 0xFF);
  put(b, 0xD8);
  if (ncomp == 4 && chance(50)) { /* Adobe, YCCK */
    static const uint8_t adobe[] = {0xFF, 0xEE, 0, 14, 'A', 'd', 'o', 'b', 'e', 0, 100, 0, 0, 0, 0, 2};
    for (size_t i = 0; i < sizeof adobe; i++)
      put(b, adobe[i]);
  }
  int nq = 1 + (int)below(4);
  for (int q = 0; q < nq; q++) {
    put(b, 0xFF);
    put(b, 0xDB);
    put16(b, 67);
    put(b, (unsigned)q);
    int base = chance(50) ? 1 : 1 + (int)below(60);
    for (int i = 0; i < 64; i++)
      put(b, (unsigned)(base + (int)below(chance(80) ? 4 : 200)));
  }
  /* SOF0 (SOF1 sometimes) */
  put(b, 0xFF);
  put(b, chance(90) ? 0xC0 : 0xC1);
  put16(b, (unsigned)(8 + 3 * ncomp));
  put(b, 8);
  put16(b, m.h);
  put16(b, m.w);
  put(b, (unsigned)ncomp);
  int tq[4], td[4], ta[4];
  for (int c = 0; c < ncomp; c++) {
    put(b, (unsigned)(c + 1));
    put(b, (unsigned)(hs[c] << 4 | vs[c]));
    tq[c] = (int)below((unsigned)nq);
    put(b, (unsigned)tq[c]);
    td[c] = chance(50) ? (c ? 1 : 0) : (int)below(4);
    ta[c] = chance(50) ? (c ? 1 : 0) : (int)below(4);
  }
  /* Huffman tables, some defined twice (the last definition counts). */
  static struct table dcs[4], acs[4];
  int have_dc[4] = {0}, have_ac[4] = {0};
  for (int c = 0; c < ncomp; c++) {
    have_dc[td[c]] = 1;
    have_ac[ta[c]] = 1;
  }
  for (int id = 0; id < 4; id++)
    for (int class = 0; class < 2; class++) {
      if (!(class ? have_ac[id] : have_dc[id]))
        continue;
      struct table *t = class ? &acs[id] : &dcs[id];
      if (chance(10)) {
        make_table(t, !class);
        write_dht(b, t, class, id);
      }
      make_table(t, !class);
      write_dht(b, t, class, id);
    }
  unsigned mcus_per_row, mcu_rows, per_mcu;
  if (ncomp == 1) {
    uint32_t cw = (m.w * (uint32_t)hs[0] + (uint32_t)hmax - 1) / (uint32_t)hmax;
    uint32_t ch = (m.h * (uint32_t)vs[0] + (uint32_t)vmax - 1) / (uint32_t)vmax;
    mcus_per_row = (cw + 7) / 8;
    mcu_rows = (ch + 7) / 8;
    per_mcu = 1;
  } else {
    mcus_per_row = (m.w + 8 * (uint32_t)hmax - 1) / (8 * (uint32_t)hmax);
    mcu_rows = (m.h + 8 * (uint32_t)vmax - 1) / (8 * (uint32_t)vmax);
    per_mcu = (unsigned)blocks;
  }
  unsigned total = mcus_per_row * mcu_rows, restart = 0;
  (void)per_mcu;
  if (chance(40)) {
    switch (below(4)) {
    case 0: restart = 1; break;
    case 1: restart = 1 + below(8); break;
    case 2: restart = total + below(3); break; /* the whole scan, or more */
    default: restart = 1 + below(total + 1);
    }
    put(b, 0xFF);
    put(b, 0xDD);
    put16(b, 4);
    put16(b, restart);
  }
  /* SOS */
  put(b, 0xFF);
  put(b, 0xDA);
  put16(b, (unsigned)(6 + 2 * ncomp));
  put(b, (unsigned)ncomp);
  int order[4] = {0, 1, 2, 3}; /* the scan's order of the components, sometimes not the frame's */
  if (chance(3)) /* libjpeg-turbo 2.1 refuses that: both sides must too */
    for (int i = ncomp - 1; i > 0; i--) {
      int j = (int)below((unsigned)i + 1), x = order[i];
      order[i] = order[j];
      order[j] = x;
    }
  for (int i = 0; i < ncomp; i++) {
    int c = order[i];
    put(b, (unsigned)(c + 1));
    put(b, (unsigned)(td[c] << 4 | ta[c]));
  }
  put(b, 0);
  put(b, 63);
  put(b, 0);
  m.scan_start = b->n;
  struct bitw w = {b, 0, 0};
  int sparse = (int)below(100), ones = chance(90);
  unsigned rst = 0;
  for (unsigned mcu = 0; mcu < total; mcu++) {
    if (restart && mcu && mcu % restart == 0) {
      pad(&w, ones);
      if (chance(5))
        for (int i = (int)below(4); i >= 0; i--)
          put(b, 0xFF); /* fill bytes */
      put(b, 0xFF);
      put(b, 0xD0 + (rst++ & 7));
    }
    if (ncomp == 1) {
      write_block(&w, &dcs[td[0]], &acs[ta[0]], sparse);
    } else {
      for (int o = 0; o < ncomp; o++)
        for (int c = order[o], i = 0; i < hs[c] * vs[c]; i++)
          write_block(&w, &dcs[td[c]], &acs[ta[c]], sparse);
    }
  }
  pad(&w, ones);
  switch (below(16)) {
  case 0: /* garbage before EOI */
    for (int i = (int)below(20); i >= 0; i--)
      put(b, (unsigned)(below(255)));
    break;
  case 1: /* fill bytes */
    for (int i = (int)below(5); i >= 0; i--)
      put(b, 0xFF);
    break;
  case 2: /* a restart marker after the last MCU */
    put(b, 0xFF);
    put(b, 0xD0 + (rst & 7));
    break;
  case 3: /* a second scan */
    put(b, 0xFF);
    put(b, 0xDA);
    put16(b, (unsigned)(6 + 2 * ncomp));
    put(b, (unsigned)ncomp);
    for (int c = 0; c < ncomp; c++) {
      put(b, (unsigned)(c + 1));
      put(b, (unsigned)(td[c] << 4 | ta[c]));
    }
    put(b, 0);
    put(b, 63);
    put(b, 0);
    for (int i = (int)below(30); i >= 0; i--)
      put(b, below(255));
    break;
  case 4: /* DNL */
    put(b, 0xFF);
    put(b, 0xDC);
    put16(b, 4);
    put16(b, m.h);
    break;
  case 5: /* FF FF 00 and FF 00 pairs */
    put(b, 0xFF);
    put(b, 0xFF);
    put(b, 0x00);
    put(b, below(255));
    put(b, 0xFF);
    put(b, 0x00);
    break;
  case 6: /* a comment */
    put(b, 0xFF);
    put(b, 0xFE);
    put16(b, 5);
    put(b, 0xFF);
    put(b, 0xD9);
    put(b, 0);
    break;
  case 7: /* a DHT after the scan */
    write_dht(b, &acs[ta[0]], 1, ta[0]);
    break;
  default:
    break;
  }
  int tail = (int)below(10);
  if (tail != 0) { /* 0: no EOI */
    put(b, 0xFF);
    put(b, 0xD9);
  }
  if (tail == 1) /* data after EOI */
    for (int i = (int)below(2000); i >= 0; i--)
      put(b, below(256));
  return m;
}

/* The coefficients, compared block by block: libjpeg's own decoder through
 * jpeg_read_coefficients, and the fast decoder called MCU by MCU the way
 * libjpeg's coefficient controller calls it (pixels alone would hide a wrong
 * coefficient in a block that saturates, as the random DC values here make
 * most blocks do). Returns -1 when either side refuses or the fast decoder gives
 * up, 0 when they agree, 1 when they differ. */
struct trap {
  struct jpeg_error_mgr err;
  jmp_buf jump;
};
static void trap_exit(j_common_ptr cinfo) { longjmp(((struct trap *)cinfo->err)->jump, 1); }
static void trap_message(j_common_ptr cinfo, int level) { (void)cinfo, (void)level; }
static jmp_buf *give_up_jump;
static void trap_give_up(j_decompress_ptr cinfo) {
  (void)cinfo;
  longjmp(*give_up_jump, 1);
}

static int coef_check(const uint8_t *data, size_t len) {
  struct jpeg_decompress_struct a, b;
  struct trap ta, tb;
  static struct rubra_huff huff;
  static JBLOCK mcu[D_MAX_BLOCKS_IN_MCU];
  volatile int result = -1;
  a.err = jpeg_std_error(&ta.err);
  b.err = jpeg_std_error(&tb.err);
  ta.err.error_exit = tb.err.error_exit = trap_exit;
  ta.err.emit_message = tb.err.emit_message = trap_message;
  jpeg_create_decompress(&a);
  jpeg_create_decompress(&b);
  give_up_jump = &tb.jump;
  if (setjmp(ta.jump) || setjmp(tb.jump)) {
    result = -1;
    goto done;
  }
  jpeg_mem_src(&a, data, (unsigned long)len);
  jpeg_read_header(&a, TRUE);
  jvirt_barray_ptr *arrays = jpeg_read_coefficients(&a);
  jpeg_mem_src(&b, data, (unsigned long)len);
  jpeg_read_header(&b, TRUE);
  if (b.num_components == 1)
    b.out_color_space = JCS_GRAYSCALE;
  else if (b.num_components != 3)
    b.out_color_space = b.num_components == 4 ? JCS_CMYK : JCS_UNKNOWN;
  jpeg_start_decompress(&b);
  if (!rubra_huff_install(&b, &huff, trap_give_up))
    goto done;
  JBLOCKROW rows[D_MAX_BLOCKS_IN_MCU];
  for (int i = 0; i < D_MAX_BLOCKS_IN_MCU; i++)
    rows[i] = &mcu[i];
  result = 0;
  for (JDIMENSION my = 0; my < b.MCU_rows_in_scan && !result; my++)
    for (JDIMENSION mx = 0; mx < b.MCUs_per_row && !result; mx++) {
      memset(mcu, 0, sizeof mcu);
      b.entropy->decode_mcu(&b, rows);
      int blkn = 0;
      for (int ci = 0; ci < b.comps_in_scan; ci++) {
        jpeg_component_info *comp = b.cur_comp_info[ci];
        int mw = b.comps_in_scan == 1 ? 1 : comp->h_samp_factor;
        int mh = b.comps_in_scan == 1 ? 1 : comp->v_samp_factor;
        for (int y = 0; y < mh; y++) {
          JDIMENSION row = my * (JDIMENSION)mh + (JDIMENSION)y;
          JBLOCKARRAY theirs = a.mem->access_virt_barray(
              (j_common_ptr)&a, arrays[comp->component_index], row, 1, FALSE);
          for (int x = 0; x < mw; x++, blkn++) {
            JDIMENSION col = mx * (JDIMENSION)mw + (JDIMENSION)x;
            if (memcmp(theirs[0][col], mcu[blkn], sizeof(JBLOCK)) != 0) {
              fprintf(stderr, "coefficients differ: MCU %u,%u component %d block %d\n", mx, my,
                      ci, blkn);
              result = 1;
            }
          }
        }
      }
    }
done:
  jpeg_destroy_decompress(&a);
  jpeg_destroy_decompress(&b);
  return result;
}

static void damage(struct buf *b, size_t from) {
  for (int m = 1 + (int)below(3); m > 0 && b->n > from + 2; m--) {
    size_t at = from + next() % (b->n - from);
    switch (below(9)) {
    case 0: b->p[at] ^= (uint8_t)(1u << below(8)); break;
    case 1: b->p[at] = 0xFF; break;
    case 2: b->p[at] = (uint8_t)next(); break;
    case 3: b->n = at + 1 + next() % (b->n - at); break;
    case 4:
      memmove(b->p + at, b->p + at + 1, b->n - at - 1);
      b->n--;
      break;
    case 5: /* the data cut at a restart marker, then EOI */
      for (size_t i = at; i + 1 < b->n; i++)
        if (b->p[i] == 0xFF && (b->p[i + 1] & 0xF8) == 0xD0) {
          b->n = i + (below(2) ? 2 : 0);
          put(b, 0xFF);
          put(b, 0xD9);
          break;
        }
      break;
    case 7: /* a restart marker with another number (libjpeg resynchronises) */
      for (size_t i = at; i + 1 < b->n; i++)
        if (b->p[i] == 0xFF && (b->p[i + 1] & 0xF8) == 0xD0) {
          b->p[i + 1] = (uint8_t)(0xD0 + ((b->p[i + 1] + 1 + below(7)) & 7));
          break;
        }
      break;
    case 6: /* FF FF 00: libjpeg reads a data byte 0xFF */
      if (at + 3 < b->n) {
        b->p[at] = 0xFF;
        b->p[at + 1] = 0xFF;
        b->p[at + 2] = 0x00;
      }
      break;
    default:
      b->p[at] = 0xFF;
      if (at + 1 < b->n)
        b->p[at + 1] = (uint8_t)(0xD0 + below(8));
    }
  }
}

int main(int argc, char **argv) {
  if (argc < 2) {
    fprintf(stderr, "usage: %s ITERATIONS [SEED] [SAVE_DIR]\n", argv[0]);
    return 2;
  }
  long iterations = atol(argv[1]);
  if (argc > 2)
    state ^= strtoull(argv[2], NULL, 0) * 0x9E3779B97F4A7C15ull;
  const char *save = argc > 3 ? argv[3] : NULL;
  long compared = 0, gave_up = 0, damaged = 0, refused = 0, differences = 0, missed = 0;
  double fast_time = 0, plain_time = 0;
  int verbose = getenv("GEN_VERBOSE") != NULL;
  struct buf b = {0};
  for (long it = 0; it < iterations; it++) {
    b.n = 0;
    struct made m = make_file(&b);
    int hurt = chance(35);
    if (hurt) {
      damaged++;
      damage(&b, m.scan_start);
    }
    uint64_t fast_hash, plain_hash;
    clock_t t0 = clock();
    int fast = decode(b.p, b.n, 1, m.w, m.h, &fast_hash, verbose), retried = fast == RUBRA_JPEG_RETRY;
    if (retried) {
      gave_up++;
      fast = decode(b.p, b.n, 0, m.w, m.h, &fast_hash, verbose);
    }
    clock_t t1 = clock();
    int plain = decode(b.p, b.n, 0, m.w, m.h, &plain_hash, verbose);
    clock_t t2 = clock();
    fast_time += (double)(t1 - t0);
    plain_time += (double)(t2 - t1);
    if (plain != 0 && plain != 4)
      refused++;
    int coefs = coef_check(b.p, b.n);
    compared += coefs == 0;
    /* An undamaged file libjpeg decodes is clean data: the fast decoder must
     * decode all of it (else the comparisons above compare libjpeg with itself). */
    int miss = !hurt && (plain == 0 || plain == 4) && (retried || coefs != 0);
    missed += miss;
    if (verbose)
      fprintf(stderr, "iteration %d: %ux%u damaged %d, fast %d (retried %d), plain %d, coefficients %d\n",
              (int)it, m.w, m.h, hurt, fast, retried, plain, coefs);
    if (fast != plain || (fast == 0 && fast_hash != plain_hash) || coefs == 1 || miss) {
      differences++;
      fprintf(stderr,
              "iteration %ld (%ux%u, %zu bytes%s): status %d vs %d, hash %llx vs %llx%s%s\n", it,
              m.w, m.h, b.n, hurt ? ", damaged" : "", fast, plain, (unsigned long long)fast_hash,
              (unsigned long long)plain_hash, coefs == 1 ? ", coefficients differ" : "",
              miss ? ", clean data not decoded by the fast decoder" : "");
      if (save) {
        char path[4096];
        snprintf(path, sizeof path, "%s/gen-%ld.jpg", save, it);
        FILE *f = fopen(path, "wb");
        if (f) {
          fwrite(b.p, 1, b.n, f);
          fclose(f);
        }
      }
    }
  }
  printf("%ld generated files (%ld damaged): %ld handed back to libjpeg, %ld refused by libjpeg, "
         "%ld decoded by both with the same coefficients, %ld clean ones missed, %ld "
         "differences; CPU fast (+ retry) / libjpeg alone %.2f\n",
         iterations, damaged, gave_up, refused, compared, missed, differences,
         plain_time > 0 ? fast_time / plain_time : 0.0);
  free(b.p);
  return differences != 0;
}
