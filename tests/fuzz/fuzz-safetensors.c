/* fuzz-safetensors.c: cnclip_safetensors_open() on arbitrary bytes: the
 * 8-byte header length, the JSON header (cnclip_json_parse) and the tensor
 * table with its offsets, shapes and dtypes. Every accepted tensor must lie
 * inside the file (fuzz_check_tensors). */
#include "config.h"

#include "fuzz-common.h"

static const int allowed[] = {
  CNCLIP_ERROR_IO,               /* only for the empty input */
  CNCLIP_ERROR_FORMAT, CNCLIP_ERROR_DTYPE, CNCLIP_ERROR_TOO_LARGE, -1
};

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  const char *path = fuzz_file_set (data, size);
  GError *error = NULL;
  CnclipWeightFile *file = cnclip_safetensors_open (path, &error);

  if (file == NULL && size > 0)
    FUZZ_CHECK (error == NULL || error->code != CNCLIP_ERROR_IO);
  fuzz_check_error (file != NULL, &error, allowed);
  if (file != NULL) {
    FUZZ_CHECK (cnclip_weight_file_get_size (file) == size);
    fuzz_check_tensors (file, cnclip_weight_file_get_data (file), size);
    cnclip_weight_file_free (file);
  }
  return 0;
}
