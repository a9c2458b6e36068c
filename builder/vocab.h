/* The template language's vocabularies, assembled from their owners: the
 * formats' option tables (formats/), the export stage's own output keys
 * (`vm`, an OVA's `target`), the OCI reference grammar (publish/ref.c) and
 * the sysprep operations (builder/sysprep.c) and the step types' schema
 * halves (provisioners/registry.c).  cli/ and the build hand it
 * to vab_template_load() in struct vab_load_opts.vocab. */
#ifndef VAB_BUILDER_VOCAB_H
#define VAB_BUILDER_VOCAB_H

#include "vab/template.h"

const struct vab_template_vocab *vab_template_vocab(void);

#endif
