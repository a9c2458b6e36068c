/* libFuzzer target: the template loader, from bytes to a checked template
 * and its canonical YAML.  Any crash, leak, hang or sanitizer report is a
 * bug: hostile templates must only ever produce diagnostics. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "builder/vocab.h"
#include "vab/vab.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  struct vab_ctx *ctx = vab_ctx_new();
  if (ctx == NULL)
    return 0;
  /* The environment stays out, so runs are reproducible. */
  struct vab_load_opts opts = {.vocab = vab_template_vocab(), .use_environment = false};
  struct vab_template *t = NULL;
  if (vab_template_load_data(ctx, "fuzz.yaml", NULL, (const char *)data, size,
                             &opts, &t) == 0) {
    char *yaml = vab_template_to_yaml(ctx, t);
    /* Canonical YAML must load again. */
    if (yaml != NULL) {
      struct vab_template *again = NULL;
      if (vab_template_load_data(ctx, "canonical.yaml", t->dir, yaml,
                                 strlen(yaml), &opts, &again) != 0)
        abort();
      char *yaml2 = vab_template_to_yaml(ctx, again);
      if (yaml2 == NULL || strcmp(yaml, yaml2) != 0)
        abort();
      free(yaml2);
      vab_template_free(again);
    }
    free(yaml);
    for (size_t i = 0; i < t->n_steps; i++)
      if (t->steps[i].spec != NULL)
        free(vab_node_to_yaml(ctx, t->steps[i].spec));
  }
  vab_template_free(t);
  vab_ctx_free(ctx);
  return 0;
}
