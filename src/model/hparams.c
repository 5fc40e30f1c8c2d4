/* hparams.c — names of the architectures (see hparams.h). */
#include "model/hparams.h"

const char *phiq_arch_name(phiq_arch a) {
    switch (a) {
    case PHIQ_ARCH_PHI3: return "phi3";
    case PHIQ_ARCH_PHI2: return "phi2";
    case PHIQ_ARCH_PHIMOE: return "phimoe";
    case PHIQ_ARCH_PHI3SMALL: return "phi3small";
    }
    return "?";
}
