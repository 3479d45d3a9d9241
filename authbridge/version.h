/*
 * The suite's version, in build_info and `-h`. The Makefile (or a package
 * build) may set it: -DAB_VERSION=\"1.2.3\".
 */
#ifndef AB_VERSION_H
#define AB_VERSION_H

#ifndef AB_VERSION
#define AB_VERSION "0.1.0"
#endif

#endif
