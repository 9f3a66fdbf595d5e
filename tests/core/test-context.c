/* test-context.c: the encoding context: abort, missing towers, argument
 * checks, empty batches, one model shared by two threads, and that encode
 * calls do not allocate. */
#include "config.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "test-util.h"
#include "context.h"

/* ------------------------------------------------------------------------ */
/* A malloc counter. This executable interposes the allocator (every library
 * in the process, GLib and the BLAS included, then calls these), counting
 * calls into the counter `counting` selects and forwarding to glibc. */

extern void *__libc_malloc (size_t size);
extern void *__libc_calloc (size_t n, size_t size);
extern void *__libc_realloc (void *p, size_t size);
extern void *__libc_memalign (size_t alignment, size_t size);
extern void __libc_free (void *p);

enum
{
  COUNT_NONE,
  COUNT_ENCODER,                 /* our code: context, towers, kernels */
  COUNT_BACKEND,                 /* inside a backend GEMM / attention call */
};
static gint counting;
static gint n_allocations[3];

/* Not inlined: a debugger breakpoint here shows who allocates. */
G_GNUC_NO_INLINE static void
counted_allocation (int who)
{
  g_atomic_int_inc (&n_allocations[who]);
}

static inline void
count_allocation (void)
{
  int who = g_atomic_int_get (&counting);
  if (who != COUNT_NONE)
    counted_allocation (who);
}

void *
malloc (size_t size)
{
  count_allocation ();
  return __libc_malloc (size);
}

void *
calloc (size_t n, size_t size)
{
  count_allocation ();
  return __libc_calloc (n, size);
}

void *
realloc (void *p, size_t size)
{
  count_allocation ();
  return __libc_realloc (p, size);
}

void
free (void *p)
{
  __libc_free (p);
}

void *
memalign (size_t alignment, size_t size)
{
  count_allocation ();
  return __libc_memalign (alignment, size);
}

void *
aligned_alloc (size_t alignment, size_t size)
{
  count_allocation ();
  return __libc_memalign (alignment, size);
}

int
posix_memalign (void **out, size_t alignment, size_t size)
{
  count_allocation ();
  if (alignment < sizeof (void *) || (alignment & (alignment - 1)) != 0)
    return EINVAL;
  void *p = __libc_memalign (alignment, size);
  if (p == NULL && size != 0)
    return ENOMEM;
  *out = p;
  return 0;
}

/* ------------------------------------------------------------------------ */

static CnclipModel *
load_tiny_with (CnclipBackendKind backend, gboolean vision, gboolean text)
{
  GError *error = NULL;
  CnclipModelParams params = cnclip_model_default_params ();
  params.backend = backend;
  params.load_vision = vision;
  params.load_text = text;
  char *dir = test_data_path (TEST_TINY_MODEL);
  CnclipModel *model = cnclip_model_load (dir, &params, &error);
  g_assert_no_error (error);
  g_assert_nonnull (model);
  g_free (dir);
  return model;
}

static CnclipModel *
load_tiny (gboolean vision, gboolean text)
{
  return load_tiny_with (CNCLIP_BACKEND_AUTO, vision, text);
}

/* Skips the test (and returns FALSE) when @kind is not built in. */
static gboolean
require_backend (CnclipBackendKind kind)
{
  if (cnclip_backend_available (kind))
    return TRUE;
  char *msg = g_strdup_printf ("backend %s is not available in this build",
      cnclip_backend_kind_to_string (kind));
  g_test_skip (msg);
  g_free (msg);
  return FALSE;
}

static CnclipContext *
new_context (CnclipModel *model, const CnclipContextParams *params)
{
  GError *error = NULL;
  CnclipContext *ctx = cnclip_context_new (model, params, &error);
  g_assert_no_error (error);
  g_assert_nonnull (ctx);
  return ctx;
}

typedef struct
{
  int polls;
  int abort_at;                  /* poll number that aborts, 0 = never */
} AbortState;

static gboolean
abort_on_poll (gpointer user_data)
{
  AbortState *s = user_data;
  s->polls++;
  return s->abort_at > 0 && s->polls == s->abort_at;
}

/* Test that an abort callback answering TRUE on its second poll stops
 * image and text encoding with CNCLIP_ERROR_ABORTED, and that the context
 * gives the golden embeddings afterwards. */
static void
test_abort (void)
{
  CnclipModel *model = load_tiny (TRUE, TRUE);
  AbortState state = { 0, 2 };
  CnclipContextParams params = cnclip_context_default_params ();
  params.abort_func = abort_on_poll;
  params.abort_user_data = &state;
  CnclipContext *ctx = new_context (model, &params);
  const int dim = cnclip_model_get_projection_dim (model);
  float *pixels = test_golden_tensor ("pixel_values", NULL, NULL);
  float *expect_images = test_golden_tensor ("image_embeds", NULL, NULL);
  float *expect_texts = test_golden_tensor ("text_embeds", NULL, NULL);
  float *embeds = g_new (float, 2 * dim);
  const char *texts[] = { test_golden_text (0)->text };
  GError *error = NULL;

  g_assert_false (cnclip_encode_pixels (ctx, pixels, 2, embeds, &error));
  test_assert_error (error, CNCLIP_ERROR, CNCLIP_ERROR_ABORTED);
  g_assert_cmpint (state.polls, ==, 2);

  state = (AbortState) { 0, 2 };
  g_assert_false (cnclip_encode_texts (ctx, texts, 1, embeds, &error));
  test_assert_error (error, CNCLIP_ERROR, CNCLIP_ERROR_ABORTED);
  g_assert_cmpint (state.polls, ==, 2);

  /* not aborting: one poll before the embeddings and one per layer */
  state = (AbortState) { 0, 0 };
  g_assert_true (cnclip_encode_pixels (ctx, pixels, 2, embeds, &error));
  g_assert_no_error (error);
  g_assert_cmpint (state.polls, ==, 2 * (1 + model->config.vision.num_layers));
  g_assert_cmpfloat (test_max_abs_diff (embeds, expect_images, 2 * dim), <=, 1e-4);
  g_assert_true (cnclip_encode_texts (ctx, texts, 1, embeds, &error));
  g_assert_no_error (error);
  g_assert_cmpfloat (test_max_abs_diff (embeds, expect_texts, dim), <=, 1e-4);

  cnclip_context_free (ctx);
  cnclip_model_unref (model);
  g_free (pixels);
  g_free (expect_images);
  g_free (expect_texts);
  g_free (embeds);
}

/* Test that a model loaded without a tower refuses that tower's encode
 * calls with CNCLIP_ERROR_UNSUPPORTED and still encodes with the other. */
static void
test_missing_tower (void)
{
  GError *error = NULL;
  float embeds[64];
  const char *texts[] = { "一只猫" };
  const gint32 ids[4] = { 101, 671, 102, 0 };
  float *pixels = test_golden_tensor ("pixel_values", NULL, NULL);
  guint8 rgb[4 * 4 * 3] = { 0 };
  CnclipImage image = { .format = CNCLIP_PIXEL_RGB, .width = 4, .height = 4,
    .planes = { rgb }, .strides = { 12 } };

  CnclipModel *vision_only = load_tiny (TRUE, FALSE);
  CnclipContext *ctx = new_context (vision_only, NULL);
  g_assert_false (cnclip_encode_texts (ctx, texts, 1, embeds, &error));
  test_assert_error (error, CNCLIP_ERROR, CNCLIP_ERROR_UNSUPPORTED);
  g_assert_false (cnclip_encode_token_ids (ctx, ids, 1, 4, embeds, &error));
  test_assert_error (error, CNCLIP_ERROR, CNCLIP_ERROR_UNSUPPORTED);
  g_assert_true (cnclip_encode_pixels (ctx, pixels, 1, embeds, &error));
  g_assert_no_error (error);
  cnclip_context_free (ctx);
  cnclip_model_unref (vision_only);

  CnclipModel *text_only = load_tiny (FALSE, TRUE);
  ctx = new_context (text_only, NULL);
  g_assert_false (cnclip_encode_pixels (ctx, pixels, 1, embeds, &error));
  test_assert_error (error, CNCLIP_ERROR, CNCLIP_ERROR_UNSUPPORTED);
  g_assert_false (cnclip_encode_images (ctx, &image, 1, embeds, &error));
  test_assert_error (error, CNCLIP_ERROR, CNCLIP_ERROR_UNSUPPORTED);
  g_assert_true (cnclip_encode_texts (ctx, texts, 1, embeds, &error));
  g_assert_no_error (error);
  cnclip_context_free (ctx);
  cnclip_model_unref (text_only);
  g_free (pixels);
}

/* Test that invalid UTF-8 in any text of a batch gives CNCLIP_ERROR_UTF8
 * naming that text, and the context keeps working. */
static void
test_invalid_utf8 (void)
{
  CnclipModel *model = load_tiny (FALSE, TRUE);
  CnclipContext *ctx = new_context (model, NULL);
  float embeds[3 * 64];
  const char *texts[] = { "一只猫", "bad \xff\xfe byte", "城市夜景" };
  const char *truncated[] = { "\xe4\xb8" };     /* first two bytes of 一 */
  GError *error = NULL;

  g_assert_false (cnclip_encode_texts (ctx, texts, 3, embeds, &error));
  g_assert_error (error, CNCLIP_ERROR, CNCLIP_ERROR_UTF8);
  g_assert_nonnull (strstr (error->message, "text 1"));
  g_clear_error (&error);
  g_assert_false (cnclip_encode_texts (ctx, truncated, 1, embeds, &error));
  test_assert_error (error, CNCLIP_ERROR, CNCLIP_ERROR_UTF8);
  g_assert_true (cnclip_encode_texts (ctx, texts, 1, embeds, &error));
  g_assert_no_error (error);

  cnclip_context_free (ctx);
  cnclip_model_unref (model);
}

/* Test that n == 0 is a successful no-op for every encode call (NULL
 * arrays allowed) that leaves the output untouched. */
static void
test_empty_batch (void)
{
  CnclipModel *model = load_tiny (TRUE, TRUE);
  CnclipContext *ctx = new_context (model, NULL);
  float sentinel[4] = { 1, 2, 3, 4 };
  GError *error = NULL;

  g_assert_true (cnclip_encode_pixels (ctx, NULL, 0, sentinel, &error));
  g_assert_true (cnclip_encode_images (ctx, NULL, 0, sentinel, &error));
  g_assert_true (cnclip_encode_texts (ctx, NULL, 0, sentinel, &error));
  g_assert_true (cnclip_encode_token_ids (ctx, NULL, 0, 52, NULL, &error));
  g_assert_no_error (error);
  const float expect[4] = { 1, 2, 3, 4 };
  g_assert_cmpmem (sentinel, sizeof sentinel, expect, sizeof expect);

  cnclip_context_free (ctx);
  cnclip_model_unref (model);
}

typedef struct
{
  int max_image_batch;
  int max_text_batch;
  int n_threads;
} BadParams;

static const BadParams bad_params[] = {
  { 0, 16, 0 },
  { -1, 16, 0 },
  { 1, 0, 0 },
  { 1, 16, -2 },
  { 100000, 16, 0 },
  { 1, 1 << 30, 0 },
};

/* Test that out-of-range context parameters give CNCLIP_ERROR_INVALID_ARGUMENT. */
static void
test_bad_params (void)
{
  CnclipModel *model = load_tiny (TRUE, TRUE);
  for (gsize i = 0; i < G_N_ELEMENTS (bad_params); i++) {
    CnclipContextParams params = cnclip_context_default_params ();
    params.max_image_batch = bad_params[i].max_image_batch;
    params.max_text_batch = bad_params[i].max_text_batch;
    params.n_threads = bad_params[i].n_threads;
    GError *error = NULL;
    g_assert_null (cnclip_context_new (model, &params, &error));
    test_assert_error (error, CNCLIP_ERROR, CNCLIP_ERROR_INVALID_ARGUMENT);
  }
  CnclipContextParams defaults = cnclip_context_default_params ();
  g_assert_cmpint (defaults.n_threads, ==, 0);
  g_assert_cmpint (defaults.max_image_batch, ==, 1);
  g_assert_cmpint (defaults.max_text_batch, ==, 16);
  g_assert_null (defaults.abort_func);
  cnclip_model_unref (model);
}

typedef struct
{
  const char *what;
  gint32 ids[60];
  int row_length;
} BadRow;

/* Test that token rows the model cannot take are refused with
 * CNCLIP_ERROR_INVALID_ARGUMENT before anything is computed. */
static void
test_bad_token_rows (void)
{
  static BadRow rows[] = {
    { "id past the vocabulary", { 101, 21128, 102 }, 3 },
    { "negative id", { 101, -1, 102 }, 3 },
    { "only padding", { 0, 0, 0, 0 }, 4 },
    { "longer than the context length", { 0 }, 60 },
    { "row length 0", { 101 }, 0 },
  };
  for (int j = 0; j < 60; j++)
    rows[3].ids[j] = 101 + (j % 5);
  CnclipModel *model = load_tiny (FALSE, TRUE);
  CnclipContext *ctx = new_context (model, NULL);
  float embeds[64];
  for (gsize i = 0; i < G_N_ELEMENTS (rows); i++) {
    GError *error = NULL;
    g_test_message ("%s", rows[i].what);
    g_assert_false (cnclip_encode_token_ids (ctx, rows[i].ids, 1, rows[i].row_length, embeds,
            &error));
    test_assert_error (error, CNCLIP_ERROR, CNCLIP_ERROR_INVALID_ARGUMENT);
  }
  cnclip_context_free (ctx);
  cnclip_model_unref (model);
}

/* Test that caller bugs (negative counts, NULL arrays) are caught with a
 * critical and FALSE. */
static void
test_caller_bugs (void)
{
  CnclipModel *model = load_tiny (TRUE, TRUE);
  CnclipContext *ctx = new_context (model, NULL);
  float embeds[64];
  g_test_expect_message ("cnclip", G_LOG_LEVEL_CRITICAL, "*n >= 0*");
  g_assert_false (cnclip_encode_pixels (ctx, embeds, -1, embeds, NULL));
  g_test_assert_expected_messages ();
  g_test_expect_message ("cnclip", G_LOG_LEVEL_CRITICAL, "*texts != NULL*");
  g_assert_false (cnclip_encode_texts (ctx, NULL, 1, embeds, NULL));
  g_test_assert_expected_messages ();
  cnclip_context_free (ctx);
  cnclip_model_unref (model);
}

typedef struct
{
  CnclipModel *model;
  const float *pixels;
  int n_images;
  const char *const *texts;
  int n_texts;
  float *image_embeds;
  float *text_embeds;
  GError *error;
} EncodeJob;

static gpointer
encode_job (gpointer data)
{
  EncodeJob *job = data;
  CnclipContextParams params = cnclip_context_default_params ();
  params.max_image_batch = 3;
  params.n_threads = 1;
  CnclipContext *ctx = cnclip_context_new (job->model, &params, &job->error);
  if (ctx == NULL)
    return NULL;
  for (int repeat = 0; repeat < 2; repeat++) {
    if (!cnclip_encode_pixels (ctx, job->pixels, job->n_images, job->image_embeds, &job->error)
        || !cnclip_encode_texts (ctx, job->texts, job->n_texts, job->text_embeds, &job->error))
      break;
  }
  cnclip_context_free (ctx);
  return NULL;
}

/* Test that two contexts on one model, encoding in two threads at once,
 * give bitwise the same embeddings as one thread alone (per backend). */
static void
test_two_threads (gconstpointer data)
{
  const CnclipBackendKind kind = GPOINTER_TO_INT (data);
  if (!require_backend (kind))
    return;
  CnclipModel *model = load_tiny_with (kind, TRUE, TRUE);
  const int ni = test_golden_n_images (), nt = test_golden_n_texts ();
  const int dim = cnclip_model_get_projection_dim (model);
  float *pixels = test_golden_tensor ("pixel_values", NULL, NULL);
  const char **texts = g_new (const char *, nt);
  for (int i = 0; i < nt; i++)
    texts[i] = test_golden_text (i)->text;

  EncodeJob jobs[3];
  for (int j = 0; j < 3; j++) {
    jobs[j] = (EncodeJob) { model, pixels, ni, texts, nt, g_new (float, (gsize) ni * dim),
      g_new (float, (gsize) nt * dim), NULL };
  }
  encode_job (&jobs[0]);
  g_assert_no_error (jobs[0].error);
  GThread *a = g_thread_new ("encode-a", encode_job, &jobs[1]);
  GThread *b = g_thread_new ("encode-b", encode_job, &jobs[2]);
  g_thread_join (a);
  g_thread_join (b);
  for (int j = 1; j < 3; j++) {
    g_assert_no_error (jobs[j].error);
    g_assert_cmpmem (jobs[j].image_embeds, sizeof (float) * ni * dim, jobs[0].image_embeds,
        sizeof (float) * ni * dim);
    g_assert_cmpmem (jobs[j].text_embeds, sizeof (float) * nt * dim, jobs[0].text_embeds,
        sizeof (float) * nt * dim);
  }
  float *expect = test_golden_tensor ("image_embeds", NULL, NULL);
  g_assert_cmpfloat (test_max_abs_diff (jobs[0].image_embeds, expect, (gsize) ni * dim), <=,
      1e-4);

  for (int j = 0; j < 3; j++) {
    g_free (jobs[j].image_embeds);
    g_free (jobs[j].text_embeds);
  }
  g_free (expect);
  g_free (texts);
  g_free (pixels);
  cnclip_model_unref (model);
}

/* The backend is not ours to judge here: BLAS libraries may allocate job
 * descriptors per threaded call. Its calls are wrapped so that their
 * allocations are counted apart. */
static const CnclipBackendOps *real_ops;

static void
counted_linear_forward (CnclipBackend *backend, const CnclipLinear *linear, const float *x,
    int ldx, int m, float *y, int ldy, gboolean accumulate)
{
  int was = g_atomic_int_get (&counting);
  g_atomic_int_set (&counting, was ? COUNT_BACKEND : COUNT_NONE);
  real_ops->linear_forward (backend, linear, x, ldx, m, y, ldy, accumulate);
  g_atomic_int_set (&counting, was);
}

static void
counted_attention (CnclipBackend *backend, const CnclipAttentionArgs *args)
{
  int was = g_atomic_int_get (&counting);
  g_atomic_int_set (&counting, was ? COUNT_BACKEND : COUNT_NONE);
  real_ops->attention (backend, args);
  g_atomic_int_set (&counting, was);
}

/* Test that encode calls on preprocessed input (pixels, token rows) make
 * no heap allocation outside the backend's GEMM calls once the context
 * exists (counted by the interposed allocator after one warm-up call),
 * for every backend built in. */
static void
test_no_allocation (gconstpointer data)
{
  const CnclipBackendKind kind = GPOINTER_TO_INT (data);
  if (!require_backend (kind))
    return;
  GError *error = NULL;
  CnclipModel *model = load_tiny_with (kind, TRUE, TRUE);
  real_ops = model->backend->ops;
  CnclipBackendOps wrapped = *real_ops;
  wrapped.linear_forward = counted_linear_forward;
  wrapped.attention = counted_attention;
  model->backend->ops = &wrapped;

  CnclipContextParams params = cnclip_context_default_params ();
  params.max_image_batch = 2;
  params.max_text_batch = 3;
  CnclipContext *ctx = new_context (model, &params);
  const int dim = cnclip_model_get_projection_dim (model);
  float *pixels = test_golden_tensor ("pixel_values", NULL, NULL);
  gint64 shape[8];
  gint32 *ids = test_golden_ids ("input_ids", NULL, shape);
  float *embeds = g_new (float, 5 * dim);
  float *expect = test_golden_tensor ("text_embeds", NULL, NULL);

  for (int pass = 0; pass < 2; pass++) {
    memset (n_allocations, 0, sizeof n_allocations);
    g_atomic_int_set (&counting, pass == 1 ? COUNT_ENCODER : COUNT_NONE);
    gboolean ok = cnclip_encode_pixels (ctx, pixels, 5, embeds, &error)
        && cnclip_encode_token_ids (ctx, ids, 5, (int) shape[1], embeds, &error);
    g_atomic_int_set (&counting, COUNT_NONE);
    g_assert_no_error (error);
    g_assert_true (ok);
  }
  g_assert_cmpfloat (test_max_abs_diff (embeds, expect, 5 * dim), <=, 1e-4);
  g_test_message ("%s: allocations during 5 images + 5 token rows: %d by the encoders, "
      "%d inside backend calls", cnclip_backend_kind_to_string (kind),
      n_allocations[COUNT_ENCODER], n_allocations[COUNT_BACKEND]);
  g_assert_cmpint (n_allocations[COUNT_ENCODER], ==, 0);

  /* the counter counts: creating a context allocates */
  g_atomic_int_set (&counting, COUNT_ENCODER);
  CnclipContext *other = new_context (model, NULL);
  g_atomic_int_set (&counting, COUNT_NONE);
  g_assert_cmpint (n_allocations[COUNT_ENCODER], >, 0);

  cnclip_context_free (other);
  cnclip_context_free (ctx);
  model->backend->ops = real_ops;
  cnclip_model_unref (model);
  g_free (pixels);
  g_free (ids);
  g_free (embeds);
  g_free (expect);
}

/* Test that the context reports its model and accepts a thread count
 * without changing results. */
static void
test_model_and_threads (void)
{
  CnclipModel *model = load_tiny (TRUE, FALSE);
  CnclipContext *ctx = new_context (model, NULL);
  g_assert_true (cnclip_context_get_model (ctx) == model);
  const int dim = cnclip_model_get_projection_dim (model);
  float *pixels = test_golden_tensor ("pixel_values", NULL, NULL);
  float *expect = test_golden_tensor ("image_embeds", NULL, NULL);
  float *embeds = g_new (float, dim);
  GError *error = NULL;
  for (int threads = 1; threads <= 2; threads++) {
    cnclip_context_set_n_threads (ctx, threads);
    g_assert_true (cnclip_encode_pixels (ctx, pixels, 1, embeds, &error));
    g_assert_no_error (error);
    g_assert_cmpfloat (test_max_abs_diff (embeds, expect, dim), <=, 1e-4);
  }
  /* the context keeps the model alive */
  cnclip_model_unref (model);
  g_assert_true (cnclip_encode_pixels (ctx, pixels, 1, embeds, &error));
  g_assert_no_error (error);
  cnclip_context_free (ctx);
  g_free (pixels);
  g_free (expect);
  g_free (embeds);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/context/abort", test_abort);
  g_test_add_func ("/context/missing-tower", test_missing_tower);
  g_test_add_func ("/context/invalid-utf8", test_invalid_utf8);
  g_test_add_func ("/context/empty-batch", test_empty_batch);
  g_test_add_func ("/context/bad-params", test_bad_params);
  g_test_add_func ("/context/bad-token-rows", test_bad_token_rows);
  g_test_add_func ("/context/caller-bugs", test_caller_bugs);
  g_test_add_data_func ("/context/two-threads/openblas",
      GINT_TO_POINTER (CNCLIP_BACKEND_OPENBLAS), test_two_threads);
  g_test_add_data_func ("/context/two-threads/onednn",
      GINT_TO_POINTER (CNCLIP_BACKEND_ONEDNN), test_two_threads);
  g_test_add_data_func ("/context/no-allocation/openblas",
      GINT_TO_POINTER (CNCLIP_BACKEND_OPENBLAS), test_no_allocation);
  g_test_add_data_func ("/context/no-allocation/onednn",
      GINT_TO_POINTER (CNCLIP_BACKEND_ONEDNN), test_no_allocation);
  g_test_add_func ("/context/model-and-threads", test_model_and_threads);
  return g_test_run ();
}
