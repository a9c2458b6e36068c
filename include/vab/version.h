/* vab: the version string (core/).  Its own header so that core/ does not
 * include vab/vab.h and with it every layer's API. */
#ifndef VAB_VERSION_H
#define VAB_VERSION_H

const char *vab_version(void);

#endif
