/* gstcnclipplugin.h: registering the cnclip plugin linked statically.
 *
 * Programs that link cnclip_plugin_static_dep (the `cnclip` tool) call
 * gst_cnclip_plugin_register_static() once after gst_init() and can then
 * create clipclassify with gst_element_factory_make() or gst_parse_launch(),
 * without GST_PLUGIN_PATH. Do not also load the shared plugin in that process.
 */
#ifndef GST_CNCLIP_PLUGIN_H
#define GST_CNCLIP_PLUGIN_H

#include <gst/gst.h>

G_BEGIN_DECLS

/* Registers the "cnclip" plugin's elements. Thread-safe (later calls do
 * nothing and return the first call's result). */
gboolean gst_cnclip_plugin_register_static (void);

G_END_DECLS

#endif /* GST_CNCLIP_PLUGIN_H */
