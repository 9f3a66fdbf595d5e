/* clipmodelcache.h: process-wide sharing of loaded models between elements.
 *
 * Two clipclassify elements that ask for the same model directory, weights
 * file, backend and precision get the same CnclipModel (a ViT-B + BERT-base is
 * 750 MB as float32: loading it twice would double the memory and the start-up
 * time). Entries are reference counted by their users and dropped with the last
 * one, so a pipeline that goes to NULL frees its model.
 *
 * Thread-safety: all functions may be called from any thread. The cache mutex
 * is held only for the table lookup; the load itself runs unlocked, and
 * concurrent requests for a key that is being loaded wait for that one load
 * (a key is never loaded twice at the same time).
 */
#ifndef CLIP_MODEL_CACHE_H
#define CLIP_MODEL_CACHE_H

#include <glib.h>
#include "cnclip.h"

G_BEGIN_DECLS

/* Returns the shared model for the key (@model_dir, @params->weights_file,
 * @params->backend, @params->precision), loading it on first use. The caller
 * owns one use and must give it back with clip_model_cache_release() (not
 * cnclip_model_unref()). Errors: those of cnclip_model_load(); a failed load is
 * not cached (the next call tries again). */
CnclipModel *clip_model_cache_acquire (const char *model_dir, const CnclipModelParams *params,
                                       GError **error);

/* Gives back one use of @model (NULL is ignored). The last release frees it. */
void clip_model_cache_release (CnclipModel *model);

/* Number of models currently held (for tests). */
guint clip_model_cache_size (void);

G_END_DECLS

#endif /* CLIP_MODEL_CACHE_H */
