/* bench-image.c: time of image conversion and resizing (FIXTURES.md 2).
 *
 * Usage: bench-image [REPEATS [SUBSTRING]]   (default 50 runs of every case;
 *        SUBSTRING picks the cases whose name contains it)
 * Prints, per case in milliseconds, the fastest and the median wall-clock
 * time and the fastest CPU time of the calling thread (all functions here
 * are single-threaded); on a shared, loaded machine the CPU time is the
 * steadiest of the three. */
#include "config.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cnclip.h"

typedef enum
{
  OP_TO_RGB,
  OP_RESIZE_RGB,
  OP_RESIZE,
} Op;

typedef struct
{
  const char *name;
  Op op;
  CnclipPixelFormat format;
  int width, height;
  int out_width, out_height;
  CnclipYuvMatrix matrix;        /* 0 (BT.601) unless named */
} Case;

static const Case cases[] = {
  {"1080p RGB -> 224x224 (resize_rgb)", OP_RESIZE_RGB, CNCLIP_PIXEL_RGB, 1920, 1080, 224, 224},
  {"1080p I420 -> RGB (to_rgb)", OP_TO_RGB, CNCLIP_PIXEL_I420, 1920, 1080, 0, 0},
  {"1080p NV12 -> RGB (to_rgb)", OP_TO_RGB, CNCLIP_PIXEL_NV12, 1920, 1080, 0, 0},
  {"1080p I420 BT.709 -> RGB (to_rgb)", OP_TO_RGB, CNCLIP_PIXEL_I420, 1920, 1080, 0, 0,
      CNCLIP_YUV_BT709},
  {"1080p BGRx -> RGB (to_rgb)", OP_TO_RGB, CNCLIP_PIXEL_BGRX, 1920, 1080, 0, 0},
  {"1080p I420 -> 224x224 (fused resize)", OP_RESIZE, CNCLIP_PIXEL_I420, 1920, 1080, 224, 224},
  {"1080p NV12 -> 224x224 (fused resize)", OP_RESIZE, CNCLIP_PIXEL_NV12, 1920, 1080, 224, 224},
  {"1080p NV12 709 full -> 224 (fused resize)", OP_RESIZE, CNCLIP_PIXEL_NV12, 1920, 1080, 224,
      224, CNCLIP_YUV_BT709_FULL},
  {"1080p BGRx -> 224x224 (fused resize)", OP_RESIZE, CNCLIP_PIXEL_BGRX, 1920, 1080, 224, 224},
  {"640x480 RGB -> 224x224 (resize_rgb)", OP_RESIZE_RGB, CNCLIP_PIXEL_RGB, 640, 480, 224, 224},
  {"640x480 I420 -> RGB (to_rgb)", OP_TO_RGB, CNCLIP_PIXEL_I420, 640, 480, 0, 0},
  {"640x480 I420 -> 224x224 (fused resize)", OP_RESIZE, CNCLIP_PIXEL_I420, 640, 480, 224, 224},
  {"3840x2160 NV12 -> 224x224 (fused resize)", OP_RESIZE, CNCLIP_PIXEL_NV12, 3840, 2160, 224,
      224},
};

static double
thread_cpu_ms (void)
{
  struct timespec ts;
  clock_gettime (CLOCK_THREAD_CPUTIME_ID, &ts);
  return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static int
compare_double (const void *a, const void *b)
{
  const double x = *(const double *) a, y = *(const double *) b;
  return x < y ? -1 : x > y;
}

/* A frame of smooth gradients plus noise (so nothing is constant). */
static CnclipImage
make_frame (const Case *c, guint8 **storage)
{
  CnclipImage im = {.format = c->format,.width = c->width,.height = c->height,
    .yuv_matrix = c->matrix
  };
  const int bpp = cnclip_pixel_format_bytes_per_pixel (c->format);
  const int cw = (c->width + 1) / 2, ch = (c->height + 1) / 2;
  gsize size;
  if (bpp > 0) {
    im.strides[0] = c->width * bpp;
    size = (gsize) im.strides[0] * c->height;
  } else {
    im.strides[0] = c->width;
    im.strides[1] = c->format == CNCLIP_PIXEL_NV12 ? 2 * cw : cw;
    im.strides[2] = cw;
    size = (gsize) c->width * c->height + 2 * (gsize) cw * ch;
  }
  guint8 *p = g_malloc (size);
  GRand *rand = g_rand_new_with_seed (1);
  for (gsize i = 0; i < size; i++)
    p[i] = (guint8) ((i * 7 / 5 + (i / 3000) * 3) + g_rand_int_range (rand, 0, 16));
  g_rand_free (rand);
  im.planes[0] = p;
  if (bpp == 0) {
    im.planes[1] = p + (gsize) c->width * c->height;
    im.planes[2] = im.planes[1] + (gsize) cw * ch;
  }
  *storage = p;
  return im;
}

int
main (int argc, char **argv)
{
  const int repeats = argc > 1 ? MAX (atoi (argv[1]), 1) : 50;
  g_print ("%-42s %8s %9s %8s   (%d runs, %u CPUs)\n", "case", "min ms", "median ms",
      "cpu ms", repeats, g_get_num_processors ());
  double *times = g_new (double, repeats);
  for (guint i = 0; i < G_N_ELEMENTS (cases); i++) {
    const Case *c = &cases[i];
    if (argc > 2 && strstr (c->name, argv[2]) == NULL)
      continue;
    guint8 *storage;
    const CnclipImage im = make_frame (c, &storage);
    const gsize out_size = c->op == OP_TO_RGB ? (gsize) c->width * c->height * 3
        : (gsize) c->out_width * c->out_height * 3;
    guint8 *out = g_malloc (out_size);
    double cpu_min = G_MAXDOUBLE;
    for (int r = -2; r < repeats; r++) {   /* two warm-up runs */
      GError *error = NULL;
      gboolean ok;
      const double c0 = thread_cpu_ms ();
      const gint64 t0 = g_get_monotonic_time ();
      switch (c->op) {
        case OP_TO_RGB:
          ok = cnclip_image_to_rgb (&im, out, &error);
          break;
        case OP_RESIZE_RGB:
          ok = cnclip_image_resize_rgb (im.planes[0], im.width, im.height, im.strides[0], out,
              c->out_width, c->out_height, &error);
          break;
        default:
          ok = cnclip_image_resize (&im, out, c->out_width, c->out_height, &error);
          break;
      }
      const gint64 t1 = g_get_monotonic_time ();
      const double c1 = thread_cpu_ms ();
      if (!ok) {
        g_printerr ("%s: %s\n", c->name, error->message);
        return 1;
      }
      if (r >= 0) {
        times[r] = (t1 - t0) / 1000.0;
        cpu_min = MIN (cpu_min, c1 - c0);
      }
    }
    qsort (times, repeats, sizeof (double), compare_double);
    g_print ("%-42s %8.2f %9.2f %8.2f\n", c->name, times[0], times[repeats / 2], cpu_min);
    g_free (out);
    g_free (storage);
  }
  g_free (times);
  return 0;
}
