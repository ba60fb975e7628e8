/*
 * gvc_decode: decode a .gvc elementary stream with libgvc and write y4m (or raw RGB24).
 *
 *   python -m gvc.capi build -o build/
 *   cc -O2 -Ibuild examples/c/gvc_decode.c -Lbuild -lgvc -Wl,-rpath,$PWD/build -o gvc_decode
 *   ./gvc_decode in.gvc out.y4m [--rgb] [--prior NAME] [--device cpu]
 *
 * A .gvc file is a sequence of units, each framed as
 *   "GVCU" | type u8 | payload length (VarInt: LEB128, 1..4 bytes) | payload | CRC-32 u32
 * (docs/bitstream.md): the first is the sequence header, every other one a GOP packet. This program
 * only splits the file into units; the library checks them. Exit status: 0 clean, 2 decoded with
 * concealed damage, 1 failure.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gvc.h"

#define MAX_UNIT_BYTES (64u << 20)

/* Reads the next unit into *buf (grown as needed). Returns its size, 0 at end of file, -1 on a
   truncated or malformed unit. */
static long read_unit(FILE *f, uint8_t **buf, size_t *cap) {
    uint8_t head[9]; /* sync 4, type 1, VarInt length up to 4 */
    size_t n = fread(head, 1, 5, f), length = 0;
    if (n == 0) return 0;
    if (n < 5 || memcmp(head, "GVCU", 4) != 0) return -1;
    for (int shift = 0;; shift += 7) {
        int c = fgetc(f);
        if (c == EOF || n == sizeof head) return -1;
        head[n++] = (uint8_t)c;
        length |= (size_t)(c & 0x7f) << shift;
        if (!(c & 0x80)) break;
    }
    if (length > MAX_UNIT_BYTES) return -1;
    size_t total = n + length + 4; /* + CRC-32 */
    if (total > *cap) {
        uint8_t *p = realloc(*buf, total);
        if (!p) return -1;
        *buf = p;
        *cap = total;
    }
    memcpy(*buf, head, n);
    if (fread(*buf + n, 1, total - n, f) != total - n) return -1;
    return (long)total;
}

static int write_frame(FILE *out, const gvc_frame *fr, int y4m) {
    if (y4m && fputs("FRAME\n", out) < 0) return -1;
    for (int p = 0; p < fr->nb_planes; p++) {
        size_t row = (size_t)fr->plane_width[p] * (fr->pixel_format == GVC_PIX_RGB24 ? 3 : 1);
        for (int y = 0; y < fr->plane_height[p]; y++)
            if (fwrite(fr->data[p] + (size_t)y * fr->linesize[p], 1, row, out) != row) return -1;
    }
    return 0;
}

/* Returns the frames the decoder has ready, or -1 on an error. */
static long drain(gvc_decoder *dec, FILE *out, int y4m) {
    gvc_frame fr;
    long n = 0;
    int rc;
    while ((rc = gvc_decoder_receive_frame(dec, &fr)) == GVC_OK) {
        if (write_frame(out, &fr, y4m) < 0) {
            fprintf(stderr, "gvc_decode: write error\n");
            return -1;
        }
        n++;
    }
    if (rc < 0) {
        fprintf(stderr, "gvc_decode: %s\n", gvc_last_error());
        return -1;
    }
    return n;
}

int main(int argc, char **argv) {
    const char *in_path = NULL, *out_path = NULL;
    gvc_decoder_options opts;
    gvc_decoder_options_default(&opts);
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--rgb")) opts.pixel_format = GVC_PIX_RGB24;
        else if (!strcmp(argv[i], "--prior") && i + 1 < argc) opts.prior = argv[++i];
        else if (!strcmp(argv[i], "--device") && i + 1 < argc) opts.device = argv[++i];
        else if (!in_path) in_path = argv[i];
        else if (!out_path) out_path = argv[i];
        else in_path = NULL, i = argc;
    }
    if (!in_path || !out_path) {
        fprintf(stderr, "usage: gvc_decode IN.gvc OUT.y4m|OUT.rgb [--rgb] [--prior NAME] [--device DEV]\n");
        return 1;
    }
    int y4m = opts.pixel_format == GVC_PIX_YUV420P;
    FILE *in = fopen(in_path, "rb");
    if (!in) { perror(in_path); return 1; }
    FILE *out = strcmp(out_path, "-") ? fopen(out_path, "wb") : stdout;
    if (!out) { perror(out_path); return 1; }

    uint8_t *unit = NULL;
    size_t cap = 0;
    long size = read_unit(in, &unit, &cap);
    if (size <= 0) { fprintf(stderr, "gvc_decode: %s: no sequence header\n", in_path); return 1; }
    gvc_decoder *dec = NULL;
    if (gvc_decoder_open(unit, (size_t)size, &opts, &dec) != GVC_OK) {
        fprintf(stderr, "gvc_decode: %s\n", gvc_last_error());
        return 1;
    }
    gvc_stream_info info;
    gvc_decoder_info(dec, &info);
    fprintf(stderr, "gvc_decode: %s %dx%d %d/%d fps, %lld frames, prior %s\n", info.mode, info.width,
            info.height, info.fps_num, info.fps_den, (long long)info.frame_count, info.prior_id);
    if (y4m)
        fprintf(out, "YUV4MPEG2 W%d H%d F%d:%d Ip A0:0 C420jpeg XYSCSS=420JPEG\n", info.width, info.height,
                info.fps_num, info.fps_den);

    long frames = 0, got;
    int status = 0;
    while ((size = read_unit(in, &unit, &cap)) > 0) {
        int rc = gvc_decoder_send_packet(dec, unit, (size_t)size, 0);
        if (rc < 0) fprintf(stderr, "gvc_decode: warning: %s\n", gvc_last_error());
        if (rc == GVC_EINTERNAL || rc == GVC_EPRIOR || (got = drain(dec, out, y4m)) < 0) { status = 1; break; }
        frames += got;
    }
    if (size < 0) fprintf(stderr, "gvc_decode: warning: truncated unit at the end of %s\n", in_path);
    if (status == 0) {
        gvc_decoder_flush(dec);
        if ((got = drain(dec, out, y4m)) < 0) status = 1;
        else frames += got;
    }
    int problems = gvc_decoder_problems(dec);
    if (status == 0 && (problems > 0 || size < 0)) status = 2;
    fprintf(stderr, "gvc_decode: %ld frames, %d problem(s)\n", frames, problems);
    gvc_decoder_close(dec);
    free(unit);
    fclose(in);
    if (out != stdout) fclose(out);
    return status;
}
