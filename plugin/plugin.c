/* plugin.c: the cnclip plugin (element clipclassify). */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <gst/gst.h>

#include "gstclipclassify.h"
#include "gstcnclipplugin.h"

static gboolean
plugin_init (GstPlugin *plugin)
{
  return GST_ELEMENT_REGISTER (clipclassify, plugin);
}

gboolean
gst_cnclip_plugin_register_static (void)
{
  static gsize done = 0;
  static gboolean ok = FALSE;

  if (g_once_init_enter (&done)) {
    ok = gst_plugin_register_static (GST_VERSION_MAJOR, GST_VERSION_MINOR, "cnclip",
                                     "Chinese-CLIP video tagging", plugin_init, VERSION,
                                     GST_LICENSE, PACKAGE, GST_PACKAGE_NAME, GST_PACKAGE_ORIGIN);
    g_once_init_leave (&done, 1);
  }
  return ok;
}

#ifndef CNCLIP_PLUGIN_STATIC
GST_PLUGIN_DEFINE (GST_VERSION_MAJOR, GST_VERSION_MINOR, cnclip, "Chinese-CLIP video tagging",
                   plugin_init, VERSION, GST_LICENSE, GST_PACKAGE_NAME, GST_PACKAGE_ORIGIN)
#endif
