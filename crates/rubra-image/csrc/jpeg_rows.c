/*
 * JPEG rows from the system's libjpeg-turbo (libjpeg API, Debian's
 * libjpeg62-turbo-dev), for rubra-image's src/libjpeg.rs.
 *
 * Why C: libjpeg reports a fatal error by calling `error_exit`, which must not
 * return; the only safe way out is longjmp back to a setjmp in C. Every
 * function below that calls into libjpeg sets its own jump point, so a longjmp
 * never crosses a Rust frame. Rust sees plain status codes (RUBRA_JPEG_*).
 *
 * The decode is libjpeg-turbo's default, the one `djpeg` and Pillow make:
 * accurate integer IDCT (JDCT_ISLOW) and fancy upsampling. Rows are handed out a
 * few at a time, so no full-frame buffer is ever allocated here.
 */
#include <setjmp.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jerror.h>
#include <jpeglib.h>

#include "jpeg_huffman.h"
#include "jpeg_rows.h"

struct rubra_jpeg {
  struct jpeg_decompress_struct cinfo;
  struct jpeg_error_mgr jerr;
  struct jpeg_progress_mgr progress;
  jmp_buf jump;
  int status;     /* the status of the fatal error that jumped, if any */
  int hit_eof;    /* libjpeg ran out of data and padded the image */
  int max_scans;  /* progressive scans allowed (a CPU bound on hostile files) */
  int last_scan;  /* the scan the work below was last charged for */
  unsigned long long work, max_work; /* coefficient visits charged / allowed */
  char message[JMSG_LENGTH_MAX];
  struct rubra_huff huff; /* the faster entropy decoder, when installed */
};

/* Which status a fatal libjpeg error is. */
static int status_of(int code) {
  switch (code) {
  case JERR_BAD_PRECISION:
  case JERR_CONVERSION_NOTIMPL:
  case JERR_NOT_COMPILED:
  case JERR_NOTIMPL:
  case JERR_SOF_UNSUPPORTED:
  case JERR_EMPTY_IMAGE:
  case JERR_FRACT_SAMPLE_NOTIMPL:
  case JERR_CCIR601_NOTIMPL:
  case JERR_ARITH_NOTIMPL:
    return RUBRA_JPEG_UNSUPPORTED;
  case JERR_IMAGE_TOO_BIG:  /* a side over libjpeg's 65 500, within the pixel limit */
  case JERR_WIDTH_OVERFLOW:
    return RUBRA_JPEG_UNSUPPORTED;
  case JERR_NO_BACKING_STORE: /* libjpeg's buffers over max_memory_to_use */
  case JERR_OUT_OF_MEMORY:
    return RUBRA_JPEG_TOO_LARGE;
  case JERR_INPUT_EOF:
  case JERR_INPUT_EMPTY:
    return RUBRA_JPEG_TRUNCATED;
  default:
    return RUBRA_JPEG_CORRUPT;
  }
}

static void on_error_exit(j_common_ptr cinfo) {
  struct rubra_jpeg *h = (struct rubra_jpeg *)cinfo->client_data;
  (*cinfo->err->format_message)(cinfo, h->message);
  h->status = status_of(cinfo->err->msg_code);
  longjmp(h->jump, 1);
}

/* Warnings (corrupt but decodable data) are not fatal, as in djpeg; only
 * running out of data is remembered. Nothing is printed. */
static void on_emit_message(j_common_ptr cinfo, int msg_level) {
  struct rubra_jpeg *h = (struct rubra_jpeg *)cinfo->client_data;
  if (msg_level < 0) {
    cinfo->err->num_warnings++;
    if (cinfo->err->msg_code == JWRN_JPEG_EOF)
      h->hit_eof = 1;
    /* JWRN_HIT_MARKER (a scan's data ends before its last block, followed by
     * a marker) is left a warning, as djpeg and Pillow do: the missing blocks
     * decode grey. Its cost is that of any file of its size, which the caller
     * has already admitted from the header. */
  }
}

static void on_output_message(j_common_ptr cinfo) { (void)cinfo; }

/* The fast Huffman decoder met data it does not decode (jpeg_huffman.c): leave
 * this decode; the caller starts again with libjpeg's own decoder. */
static void on_give_up(j_decompress_ptr cinfo) {
  struct rubra_jpeg *h = (struct rubra_jpeg *)cinfo->client_data;
  snprintf(h->message, sizeof h->message, "the fast Huffman decoder gave up");
  h->status = RUBRA_JPEG_RETRY;
  longjmp(h->jump, 1);
}

/* A progressive file may hold any number of scans, each a pass over the whole
 * coefficient buffer: refuse the ones with more than `max_scans`. */
static void on_progress(j_common_ptr cinfo) {
  struct rubra_jpeg *h = (struct rubra_jpeg *)cinfo->client_data;
  j_decompress_ptr d = (j_decompress_ptr)cinfo;
  if (!cinfo->is_decompressor || d->input_scan_number == h->last_scan)
    return;
  h->last_scan = d->input_scan_number;
  if (d->input_scan_number > h->max_scans) {
    snprintf(h->message, sizeof h->message, "more than %d scans", h->max_scans);
    h->status = RUBRA_JPEG_CORRUPT;
    longjmp(h->jump, 1);
  }
  /* Each scan is a pass over its components' blocks, costing about one step
   * per coefficient of its band: charge it, against a budget proportional to
   * the image (an ordinary progressive file spends 2-3 times its coefficients). */
  unsigned long long blocks = 0;
  for (int i = 0; i < d->comps_in_scan; i++)
    blocks += (unsigned long long)d->cur_comp_info[i]->width_in_blocks *
              d->cur_comp_info[i]->height_in_blocks;
  h->work += blocks * (unsigned long long)(d->progressive_mode ? d->Se - d->Ss + 1 : DCTSIZE2);
  if (h->work > h->max_work) {
    snprintf(h->message, sizeof h->message, "more scans than an image of this size needs");
    h->status = RUBRA_JPEG_CORRUPT;
    longjmp(h->jump, 1);
  }
}

struct rubra_jpeg *rubra_jpeg_new(void) {
  /* volatile: read after the longjmp below (GCC's -Wclobbered). */
  struct rubra_jpeg *volatile h = calloc(1, sizeof *h);
  if (h == NULL)
    return NULL;
  h->cinfo.err = jpeg_std_error(&h->jerr);
  h->jerr.error_exit = on_error_exit;
  h->jerr.emit_message = on_emit_message;
  h->jerr.output_message = on_output_message;
  h->cinfo.client_data = h;
  if (setjmp(h->jump)) {
    jpeg_destroy_decompress(&h->cinfo); /* frees what the failed create made */
    free(h);
    return NULL;
  }
  jpeg_create_decompress(&h->cinfo);
  h->progress.progress_monitor = on_progress;
  h->cinfo.progress = &h->progress;
  return h;
}

void rubra_jpeg_free(struct rubra_jpeg *h) {
  if (h == NULL)
    return;
  jpeg_destroy_decompress(&h->cinfo);
  free(h);
}

const char *rubra_jpeg_message(const struct rubra_jpeg *h) { return h->message; }

/* Reads the header and starts decompression: `*layout` is RUBRA_JPEG_GRAY,
 * _RGB or _CMYK (samples per pixel). `max_memory` bounds libjpeg's own
 * allocations (the coefficient buffer of a progressive file is the big one).
 * With `fast`, a baseline file's Huffman data is decoded by jpeg_huffman.c;
 * a later read may then return RUBRA_JPEG_RETRY. */
int rubra_jpeg_start(struct rubra_jpeg *h, const uint8_t *data, size_t len, long max_memory,
                     int fast, int max_scans, uint32_t expect_width, uint32_t expect_height,
                     uint32_t *width, uint32_t *height, int *layout) {
  j_decompress_ptr cinfo = &h->cinfo;
  if (setjmp(h->jump))
    return h->status;
  h->max_scans = max_scans;
  cinfo->mem->max_memory_to_use = max_memory;
  jpeg_mem_src(cinfo, data, (unsigned long)len);
  (void)jpeg_read_header(cinfo, TRUE);
  /* The frame must be the one the caller probed and admitted: nothing is
   * decoded before this check (a multi-scan file is absorbed by
   * jpeg_start_decompress). */
  if (cinfo->image_width != expect_width || cinfo->image_height != expect_height) {
    snprintf(h->message, sizeof h->message, "frame %ux%u is not the probed %ux%u",
             cinfo->image_width, cinfo->image_height, expect_width, expect_height);
    return RUBRA_JPEG_CORRUPT;
  }
  {
    unsigned long long coefs = 0;
    for (int i = 0; i < cinfo->num_components; i++)
      coefs += (unsigned long long)cinfo->comp_info[i].width_in_blocks *
               cinfo->comp_info[i].height_in_blocks * DCTSIZE2;
    /* 6 passes over every coefficient, and never less than a 1 MP file's. */
    h->max_work = 6 * coefs;
    if (h->max_work < 6ull * 3 * 1024 * 1024)
      h->max_work = 6ull * 3 * 1024 * 1024;
  }
  switch (cinfo->jpeg_color_space) {
  case JCS_GRAYSCALE:
    cinfo->out_color_space = JCS_GRAYSCALE;
    break;
  case JCS_CMYK:
  case JCS_YCCK:
    cinfo->out_color_space = JCS_CMYK;
    break;
  default:
    cinfo->out_color_space = JCS_RGB;
    break;
  }
  (void)jpeg_start_decompress(cinfo);
  if (fast)
    (void)rubra_huff_install(cinfo, &h->huff, on_give_up);
  *width = cinfo->output_width;
  *height = cinfo->output_height;
  *layout = cinfo->output_components;
  return RUBRA_JPEG_OK;
}

/* Decodes up to `max_rows` (≤ RUBRA_JPEG_MAX_ROWS) rows into `buf`, `stride`
 * bytes apart; `*rows` is how many came out (0 at the end of the image). */
int rubra_jpeg_read(struct rubra_jpeg *h, uint8_t *buf, size_t stride, uint32_t max_rows,
                    uint32_t *rows) {
  j_decompress_ptr cinfo = &h->cinfo;
  JSAMPROW pointers[RUBRA_JPEG_MAX_ROWS];
  volatile uint32_t done = 0;
  *rows = 0;
  if (max_rows > RUBRA_JPEG_MAX_ROWS)
    max_rows = RUBRA_JPEG_MAX_ROWS;
  for (uint32_t i = 0; i < max_rows; i++)
    pointers[i] = buf + (size_t)i * stride;
  if (setjmp(h->jump))
    return h->status;
  while (done < max_rows && cinfo->output_scanline < cinfo->output_height) {
    JDIMENSION got = jpeg_read_scanlines(cinfo, pointers + done, max_rows - done);
    if (got == 0)
      break; /* only a suspending data source returns none; the memory source never does */
    done += got;
  }
  *rows = done;
  return RUBRA_JPEG_OK;
}

/* Reads the rest of the file to its end-of-image marker, as djpeg does;
 * RUBRA_JPEG_TRUNCATED when libjpeg had to pad missing data with grey. */
int rubra_jpeg_finish(struct rubra_jpeg *h) {
  if (setjmp(h->jump))
    return h->status;
  (void)jpeg_finish_decompress(&h->cinfo);
  return h->hit_eof ? RUBRA_JPEG_TRUNCATED : RUBRA_JPEG_OK;
}
