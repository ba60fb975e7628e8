/*
 * libgvc: the GVC decoder as a C library (docs/capi.md).
 *
 * libgvc.so embeds CPython (cffi embedding mode) and runs the gvc package it was built against
 * (`python -m gvc.capi build`); the first call into the library starts the interpreter and imports
 * gvc and torch, which takes a few seconds. Link with -lgvc; nothing else is needed at build time.
 *
 * Model: the send/receive pattern of FFmpeg's libavcodec. One packet is one GVC GOP unit: a block
 * of the Matroska track, or one unit of a .gvc elementary stream after its sequence header.
 *
 *   gvc_decoder *dec;
 *   gvc_decoder_open(header, header_size, &opts, &dec);       sequence header / CodecPrivate
 *   for each packet:
 *       gvc_decoder_send_packet(dec, data, size, 0);
 *       while (gvc_decoder_receive_frame(dec, &frame) == GVC_OK) use(&frame);
 *   gvc_decoder_flush(dec);                                    end of stream
 *   while (gvc_decoder_receive_frame(dec, &frame) == GVC_OK) use(&frame);   until GVC_EOF
 *   gvc_decoder_close(dec);
 *
 * Return values: GVC_OK (0), GVC_EAGAIN / GVC_EOF (> 0, from receive), or an error (< 0) whose
 * reason gvc_last_error() gives as one line.
 *
 * Damage: a packet that fails its CRC or syntax returns GVC_EBITSTREAM and yields no frames; the
 * decoder stays usable. A GOP missing between two packets (its packet lost, or rejected) is
 * concealed: its frames are the last good frame repeated, with their own pts, and
 * gvc_decoder_problems() counts it. A packet that parses but cannot be decoded is concealed the same
 * way (frames queued) and its call returns GVC_EBITSTREAM. A GOP whose decoded frames differ from the encoder's hash (another
 * platform) is output and counted as well.
 *
 * Threading: every function may be called from any thread. Calls on one decoder are serialised (a
 * second thread blocks until the first returns); different decoders may be used from different threads,
 * and the decoding itself (torch) runs outside Python's global interpreter lock, but the Python parts
 * of each call do not run in parallel. gvc_last_error() is per thread.
 *
 * Buffer ownership: the library never keeps or frees a pointer the caller passes in (header and packet
 * bytes are copied during the call; option strings are read during gvc_decoder_open only). Everything
 * the library returns is owned by the library: a gvc_frame's planes stay valid until the next
 * gvc_decoder_receive_frame, gvc_decoder_send_packet, gvc_decoder_flush, gvc_decoder_reset or
 * gvc_decoder_close on that decoder; the string of gvc_last_error() until the next libgvc call on the
 * same thread; gvc_version()'s for ever. Copy what must live longer.
 */
#ifndef GVC_H
#define GVC_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* --- cffi: from here to the end marker, the declarations libgvc exports (parsed by gvc.capi.build) --- */
#define GVC_OK 0
#define GVC_EAGAIN 1          /* receive: no frame queued; send the next packet */
#define GVC_EOF 2             /* receive: flushed and every frame returned */
#define GVC_EINVAL -1         /* a bad argument (NULL pointer, unknown option, call out of order) */
#define GVC_EBITSTREAM -2     /* damaged or unsupported stream data */
#define GVC_EPRIOR -3         /* the prior named by the stream or the options cannot be loaded or differs */
#define GVC_EINTERNAL -4      /* anything else: a bug; gvc_last_error() has the Python exception */

#define GVC_PIX_YUV420P 0     /* planar Y, U, V; chroma (width+1)/2 x (height+1)/2; BT.601 limited range,
                                 converted exactly as `gvc decode -o x.y4m` does */
#define GVC_PIX_RGB24 1       /* one plane, packed R, G, B: the decoder's own output */

#define GVC_PACKET_REFERENCE 1  /* send_packet flag: decode only what later GOPs need, output no frame
                                   (I2V: the whole GOP; FLF2V: its last anchor; T2V: nothing) */

typedef struct gvc_decoder gvc_decoder;

typedef struct gvc_decoder_options {
    const char *prior;   /* NULL: the prior the stream names (shipped zoo name); else a zoo name,
                            "analytic" or a prior folder */
    const char *device;  /* NULL: "cpu"; or "cuda", "cuda:1" */
    int pixel_format;    /* GVC_PIX_YUV420P or GVC_PIX_RGB24 */
    int verify;          /* nonzero: compare each GOP with the encoder's frame hash (counted in problems) */
} gvc_decoder_options;

typedef struct gvc_stream_info {
    int width, height;
    int fps_num, fps_den;      /* frame rate; pts are frame indices, time = pts * fps_den / fps_num */
    int64_t frame_count;       /* 0 = unknown */
    int gop_length, gop_overlap;
    char mode[8];              /* "t2v", "i2v" or "flf2v" */
    char prior_id[256];
} gvc_stream_info;

typedef struct gvc_frame {
    int width, height, pixel_format;
    int64_t pts;               /* frame index in the stream, 0-based */
    int nb_planes;             /* 3 for YUV420P, 1 for RGB24 */
    const uint8_t *data[3];    /* owned by the decoder, see "Buffer ownership" */
    int linesize[3];           /* bytes per row of each plane (>= its width in bytes) */
    int plane_width[3], plane_height[3];  /* in samples of that plane */
} gvc_frame;

const char *gvc_version(void);
const char *gvc_last_error(void);
void gvc_decoder_options_default(gvc_decoder_options *opts);

/* header: the sequence header unit (the first unit of a .gvc file) or the Matroska CodecPrivate
   (a 40-byte BITMAPINFOHEADER followed by that unit); opts may be NULL (defaults). */
int gvc_decoder_open(const uint8_t *header, size_t header_size, const gvc_decoder_options *opts,
                     gvc_decoder **out);
int gvc_decoder_info(gvc_decoder *dec, gvc_stream_info *info);
/* One GOP unit; flags: 0 or GVC_PACKET_REFERENCE. Decodes it before returning (seconds per GOP). */
int gvc_decoder_send_packet(gvc_decoder *dec, const uint8_t *data, size_t size, int flags);
/* GVC_OK and a frame, GVC_EAGAIN (send more), GVC_EOF (after flush, nothing left), or an error. */
int gvc_decoder_receive_frame(gvc_decoder *dec, gvc_frame *frame);
/* End of stream: conceal GOPs missing at the end (when the header knows the frame count); then
   receive returns the remaining frames and GVC_EOF. */
int gvc_decoder_flush(gvc_decoder *dec);
/* Before sending packets from elsewhere in the stream (a seek): drop queued frames and the chain.
   The next packet must be decodable on its own: a keyframe (T2V: any; I2V: GOP 0 or a --refresh GOP),
   or for FLF2V a GOP whose previous packet was just sent with GVC_PACKET_REFERENCE. */
int gvc_decoder_reset(gvc_decoder *dec);
/* Damaged, missing or hash-mismatching GOPs met so far. */
int gvc_decoder_problems(gvc_decoder *dec);
void gvc_decoder_close(gvc_decoder *dec);   /* NULL is allowed */
/* --- cffi: end --- */

#ifdef __cplusplus
}
#endif

#endif /* GVC_H */
