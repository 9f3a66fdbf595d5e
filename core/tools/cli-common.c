/* cli-common.c: helpers shared by the cnclip subcommands. */
#include "config.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <string.h>

#include <json-glib/json-glib.h>

#ifdef CNCLIP_HAVE_GST
#include <gst/gst.h>
#include <gst/app/gstappsink.h>
#include <gst/video/video.h>
#endif

#include "cli.h"

int
cli_fail (const char *cmd, GError *error)
{
  fprintf (stderr, "cnclip %s: %s\n", cmd, error ? error->message : "failed");
  g_clear_error (&error);
  return 1;
}

int
cli_failf (const char *cmd, const char *format, ...)
{
  va_list args;
  va_start (args, format);
  char *msg = g_strdup_vprintf (format, args);
  va_end (args);
  fprintf (stderr, "cnclip %s: %s\n", cmd, msg);
  g_free (msg);
  return 1;
}

gboolean
cli_parse (const char *cmd, const char *parameter_string, const char *summary,
    GOptionEntry *entries, int *argc, char ***argv)
{
  GError *error = NULL;
  char *name = g_strdup_printf ("cnclip %s", cmd);
  GOptionContext *octx = g_option_context_new (parameter_string);
  g_set_prgname (name);
  if (summary)
    g_option_context_set_summary (octx, summary);
  g_option_context_add_main_entries (octx, entries, NULL);
  gboolean ok = g_option_context_parse (octx, argc, argv, &error);
  g_option_context_free (octx);
  if (!ok) {
    fprintf (stderr, "%s: %s\n", name, error->message);
    g_error_free (error);
  }
  g_free (name);
  return ok;
}

void
cli_json_append_string (GString *out, const char *str)
{
  g_string_append_c (out, '"');
  for (const unsigned char *p = (const unsigned char *) str; *p; p++) {
    switch (*p) {
      case '"': g_string_append (out, "\\\""); break;
      case '\\': g_string_append (out, "\\\\"); break;
      case '\n': g_string_append (out, "\\n"); break;
      case '\r': g_string_append (out, "\\r"); break;
      case '\t': g_string_append (out, "\\t"); break;
      case '\b': g_string_append (out, "\\b"); break;
      case '\f': g_string_append (out, "\\f"); break;
      default:
        if (*p < 0x20)
          g_string_append_printf (out, "\\u%04x", *p);
        else
          g_string_append_c (out, (char) *p);
    }
  }
  g_string_append_c (out, '"');
}

/* JSON has no NaN/Inf; they would make the line unparsable. */
static void
append_float (GString *out, float v)
{
  if (isnan (v) || isinf (v))
    g_string_append (out, "null");
  else
    g_string_append_printf (out, "%.9g", (double) v);
}

void
cli_json_append_floats (GString *out, const float *values, int n)
{
  g_string_append_c (out, '[');
  for (int i = 0; i < n; i++) {
    if (i)
      g_string_append_c (out, ',');
    append_float (out, values[i]);
  }
  g_string_append_c (out, ']');
}

void
cli_json_append_ints (GString *out, const gint32 *values, int n)
{
  g_string_append_c (out, '[');
  for (int i = 0; i < n; i++)
    g_string_append_printf (out, i ? ",%d" : "%d", values[i]);
  g_string_append_c (out, ']');
}

char **
cli_read_jsonl_strings (FILE *in, GError **error)
{
  GPtrArray *strings = g_ptr_array_new_with_free_func (g_free);
  JsonParser *parser = json_parser_new ();
  GString *line = g_string_new (NULL);
  int line_no = 0;
  int c;
  gboolean eof = FALSE;

  while (!eof) {
    g_string_truncate (line, 0);
    while ((c = fgetc (in)) != EOF && c != '\n')
      g_string_append_c (line, (char) c);
    eof = (c == EOF);
    line_no++;
    if (line->len > 0 && line->str[line->len - 1] == '\r')
      g_string_truncate (line, line->len - 1);
    if (line->len == 0 || strspn (line->str, " \t") == line->len)
      continue;
    GError *local = NULL;
    if (!json_parser_load_from_data (parser, line->str, line->len, &local)) {
      g_set_error (error, CNCLIP_ERROR, CNCLIP_ERROR_INVALID_ARGUMENT,
          "standard input line %d: %s", line_no, local->message);
      g_error_free (local);
      goto fail;
    }
    JsonNode *root = json_parser_get_root (parser);
    if (!JSON_NODE_HOLDS_VALUE (root) || json_node_get_value_type (root) != G_TYPE_STRING) {
      g_set_error (error, CNCLIP_ERROR, CNCLIP_ERROR_INVALID_ARGUMENT,
          "standard input line %d: expected a JSON string", line_no);
      goto fail;
    }
    g_ptr_array_add (strings, g_strdup (json_node_get_string (root)));
  }
  g_string_free (line, TRUE);
  g_object_unref (parser);
  g_ptr_array_add (strings, NULL);
  return (char **) g_ptr_array_free (strings, FALSE);

fail:
  g_string_free (line, TRUE);
  g_object_unref (parser);
  g_ptr_array_free (strings, TRUE);
  return NULL;
}

CnclipModel *
cli_load_model (const char *model_dir, const char *backend, const char *precision,
    gboolean need_vision, gboolean need_text, GError **error)
{
  CnclipModelParams params = cnclip_model_default_params ();
  if (model_dir == NULL) {
    g_set_error (error, CNCLIP_ERROR, CNCLIP_ERROR_INVALID_ARGUMENT,
        "no model directory given (-m MODEL_DIR)");
    return NULL;
  }
  if (backend && !cnclip_backend_kind_from_string (backend, &params.backend)) {
    g_set_error (error, CNCLIP_ERROR, CNCLIP_ERROR_INVALID_ARGUMENT,
        "unknown backend '%s' (auto, onednn, openblas)", backend);
    return NULL;
  }
  if (precision && !cnclip_precision_from_string (precision, &params.precision)) {
    g_set_error (error, CNCLIP_ERROR, CNCLIP_ERROR_INVALID_ARGUMENT,
        "unknown precision '%s' (fp32, bf16, int8)", precision);
    return NULL;
  }
  params.load_vision = need_vision;
  params.load_text = need_text;
  return cnclip_model_load (model_dir, &params, error);
}

static gboolean
load_raw_rgb (const char *path, int width, int height, guint8 **rgb, GError **error)
{
  char *contents = NULL;
  gsize length = 0;
  GError *local = NULL;
  if (!g_file_get_contents (path, &contents, &length, &local)) {
    g_set_error (error, CNCLIP_ERROR, CNCLIP_ERROR_IO, "%s", local->message);
    g_error_free (local);
    return FALSE;
  }
  guint64 expected = (guint64) width * (guint64) height * 3;
  if (length != expected) {
    g_set_error (error, CNCLIP_ERROR, CNCLIP_ERROR_FORMAT,
        "%s: raw RGB %dx%d needs %" G_GUINT64_FORMAT " bytes, file has %" G_GSIZE_FORMAT,
        path, width, height, expected, length);
    g_free (contents);
    return FALSE;
  }
  *rgb = (guint8 *) contents;
  return TRUE;
}

#ifdef CNCLIP_HAVE_GST
static CnclipPixelFormat
pixel_format_from_video (GstVideoFormat format)
{
  switch (format) {
    case GST_VIDEO_FORMAT_RGB: return CNCLIP_PIXEL_RGB;
    case GST_VIDEO_FORMAT_BGR: return CNCLIP_PIXEL_BGR;
    case GST_VIDEO_FORMAT_RGBA: return CNCLIP_PIXEL_RGBA;
    case GST_VIDEO_FORMAT_BGRA: return CNCLIP_PIXEL_BGRA;
    case GST_VIDEO_FORMAT_RGBx: return CNCLIP_PIXEL_RGBX;
    case GST_VIDEO_FORMAT_BGRx: return CNCLIP_PIXEL_BGRX;
    case GST_VIDEO_FORMAT_xRGB: return CNCLIP_PIXEL_XRGB;
    case GST_VIDEO_FORMAT_xBGR: return CNCLIP_PIXEL_XBGR;
    default: return CNCLIP_PIXEL_GRAY8;
  }
}

/* Decodes the first frame. The decoder's own format is kept when it is one we
 * convert ourselves (RGB, RGBA, GRAY8, ...), so alpha is dropped and grey is
 * replicated exactly as PIL convert("RGB") does. */
static gboolean
decode_with_gstreamer (const char *path, guint8 **rgb, int *width, int *height, GError **error)
{
  GError *local = NULL;
  gboolean ok = FALSE;

  if (!gst_is_initialized ())
    gst_init (NULL, NULL);
  if (!g_file_test (path, G_FILE_TEST_IS_REGULAR)) {
    g_set_error (error, CNCLIP_ERROR, CNCLIP_ERROR_IO, "%s: no such file", path);
    return FALSE;
  }
  GstElement *pipeline = gst_parse_launch (
      "uridecodebin name=dec ! videoconvert ! appsink name=sink sync=false "
      "caps=\"video/x-raw,format=(string){RGB,RGBA,BGR,BGRA,RGBx,BGRx,xRGB,xBGR,GRAY8}\"",
      &local);
  if (pipeline == NULL) {
    g_set_error (error, CNCLIP_ERROR, CNCLIP_ERROR_IO, "cannot build decoder: %s",
        local->message);
    g_error_free (local);
    return FALSE;
  }
  char *abs = g_canonicalize_filename (path, NULL);
  char *uri = g_filename_to_uri (abs, NULL, NULL);
  GstElement *dec = gst_bin_get_by_name (GST_BIN (pipeline), "dec");
  GstElement *sink = gst_bin_get_by_name (GST_BIN (pipeline), "sink");
  g_object_set (dec, "uri", uri, NULL);

  gst_element_set_state (pipeline, GST_STATE_PAUSED);
  GstSample *sample = gst_app_sink_try_pull_preroll (GST_APP_SINK (sink), 30 * GST_SECOND);
  if (sample == NULL) {
    GstBus *bus = gst_element_get_bus (pipeline);
    GstMessage *msg = gst_bus_pop_filtered (bus, GST_MESSAGE_ERROR);
    if (msg) {
      GError *gerr = NULL;
      gst_message_parse_error (msg, &gerr, NULL);
      g_set_error (error, CNCLIP_ERROR, CNCLIP_ERROR_FORMAT, "%s: cannot decode: %s", path,
          gerr->message);
      g_error_free (gerr);
      gst_message_unref (msg);
    } else {
      g_set_error (error, CNCLIP_ERROR, CNCLIP_ERROR_FORMAT, "%s: cannot decode an image", path);
    }
    gst_object_unref (bus);
    goto out;
  }

  GstVideoInfo info;
  if (!gst_video_info_from_caps (&info, gst_sample_get_caps (sample))) {
    g_set_error (error, CNCLIP_ERROR, CNCLIP_ERROR_FORMAT, "%s: decoder gave unusable caps", path);
    gst_sample_unref (sample);
    goto out;
  }
  GstVideoFrame frame;
  if (!gst_video_frame_map (&frame, &info, gst_sample_get_buffer (sample), GST_MAP_READ)) {
    g_set_error (error, CNCLIP_ERROR, CNCLIP_ERROR_FORMAT, "%s: cannot map decoded frame", path);
    gst_sample_unref (sample);
    goto out;
  }
  CnclipImage image = {
    .format = pixel_format_from_video (GST_VIDEO_INFO_FORMAT (&info)),
    .width = GST_VIDEO_INFO_WIDTH (&info),
    .height = GST_VIDEO_INFO_HEIGHT (&info),
    .planes = { GST_VIDEO_FRAME_PLANE_DATA (&frame, 0) },
    .strides = { GST_VIDEO_FRAME_PLANE_STRIDE (&frame, 0) },
  };
  *rgb = g_malloc ((gsize) image.width * image.height * 3);
  ok = cnclip_image_to_rgb (&image, *rgb, error);
  if (ok) {
    *width = image.width;
    *height = image.height;
  } else {
    g_clear_pointer (rgb, g_free);
  }
  gst_video_frame_unmap (&frame);
  gst_sample_unref (sample);

out:
  gst_element_set_state (pipeline, GST_STATE_NULL);
  gst_object_unref (dec);
  gst_object_unref (sink);
  gst_object_unref (pipeline);
  g_free (uri);
  g_free (abs);
  return ok;
}
#endif

gboolean
cli_load_image (const char *path, int raw_width, int raw_height, guint8 **rgb, int *width,
    int *height, GError **error)
{
  if (raw_width > 0 && raw_height > 0) {
    if (!load_raw_rgb (path, raw_width, raw_height, rgb, error))
      return FALSE;
    *width = raw_width;
    *height = raw_height;
    return TRUE;
  }
#ifdef CNCLIP_HAVE_GST
  return decode_with_gstreamer (path, rgb, width, height, error);
#else
  g_set_error (error, CNCLIP_ERROR, CNCLIP_ERROR_UNSUPPORTED,
      "%s: built without GStreamer; use --raw WIDTHxHEIGHT", path);
  return FALSE;
#endif
}
