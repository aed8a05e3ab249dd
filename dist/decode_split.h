// Tensor-parallel pieces of a decode step. One new token lives on the tail rank of the cp group;
// the group's other ranks would wait through the tail's dense products, and a decode step is a
// stream of weights, so each rank reads a slice instead. Output rows are split, never the inner
// dimension: every value is the same dot product, in the same order, as on one rank (the fp32
// path stays exact at any cp).
#pragma once
#include <cstdint>
#include <vector>

#include "comm/comm.h"
#include "model/config/config.h"
#include "model/io/model_weights.h"

namespace modelone {

class DecodeSplit {
 public:
  // The shared expert of the tail's token over the group: h[D] (read on the tail, overwritten
  // elsewhere) goes to every rank; each computes rows [i0, i1) of gate and up (I split evenly)
  // and the activations meet on every rank (I floats); each computes rows [d0, d1) of w2 and
  // they meet at the tail in y[D]. Collective over the group; the tail must hold h.
  void shared_expert(const ModelConfig& cfg, const comm::Comm& group, int tail,
                     const ExpertWeights& e, float* h, float* y);

 private:
  std::vector<float> gate_, up_, act_, rows_, out_;
};

}  // namespace modelone
