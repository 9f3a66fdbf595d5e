/* test-util.h: the small helpers every core test uses. */
#ifndef CNCLIP_TEST_UTIL_H
#define CNCLIP_TEST_UTIL_H

#include <glib.h>
#include "cnclip.h"

G_BEGIN_DECLS

/* Absolute path of a file under tests/data ($CNCLIP_TEST_DATA, else the
 * source tree). g_free the result. */
char *test_data_path (const char *relative);

/* tests/data/cnclip-tiny, -bin, -official */
#define TEST_TINY_MODEL "cnclip-tiny"
#define TEST_TINY_BIN_MODEL "cnclip-tiny-bin"
#define TEST_TINY_OFFICIAL_MODEL "cnclip-tiny-official"

/* Reads tensor @name of golden/expected.safetensors as float32 (F32 or F64
 * converted; I64 converted to float too). Fails the test when absent.
 * @shape (may be NULL) receives up to 8 dims, @ndim the count. g_free. */
float *test_golden_tensor (const char *name, int *ndim, gint64 *shape);
/* Same for the I64 tensors (input_ids, attention_mask) as int32. */
gint32 *test_golden_ids (const char *name, int *ndim, gint64 *shape);

/* Largest absolute difference of two float arrays. */
double test_max_abs_diff (const float *a, const float *b, gsize n);
/* Cosine of two vectors. */
double test_cosine (const float *a, const float *b, gsize n);

/* golden.json parsed (owned by the helper, freed at exit). */
typedef struct
{
  char *name;
  char *png;          /* relative to golden/ */
  char *rgb;
  char *resized_rgb;
  int width;
  int height;
} TestGoldenImage;

typedef struct
{
  char *text;
  int num_tokens;
} TestGoldenText;

int test_golden_n_images (void);
const TestGoldenImage *test_golden_image (int index);
int test_golden_n_texts (void);
const TestGoldenText *test_golden_text (int index);

/* Reads a whole file (fails the test on error). */
guint8 *test_read_file (const char *path, gsize *length);

/* A temporary directory removed (recursively) at exit. */
char *test_make_temp_dir (void);
/* Copies every regular file of @src_dir into @dst_dir (non-recursive). */
void test_copy_dir (const char *src_dir, const char *dst_dir);

/* Asserts @error is set with the given domain and code; prints the message
 * in verbose runs and clears it. */
#define test_assert_error(error, domain, code) \
  G_STMT_START { \
    g_assert_error ((error), (domain), (code)); \
    if (g_test_verbose ()) \
      g_printerr ("  expected error: %s\n", (error)->message); \
    g_clear_error (&(error)); \
  } G_STMT_END

G_END_DECLS

#endif
