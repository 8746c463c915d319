#include "parallel/cost_model_config.h"

namespace deepnet {

ModelShape ModelShapeOf(const config::ModelConfig& model) {
  ModelShape shape;
  switch (model.architecture()) {
    case config::ModelConfig::ENCODER_ONLY:
      shape.arch = ModelShape::Arch::kEncoderOnly;
      break;
    case config::ModelConfig::DECODER_ONLY:
      shape.arch = ModelShape::Arch::kDecoderOnly;
      break;
    default:
      shape.arch = ModelShape::Arch::kEncoderDecoder;
  }
  shape.encoder_layers = model.encoder_layers();
  shape.decoder_layers = model.decoder_layers();
  shape.d_model = model.d_model();
  shape.heads = model.heads();
  shape.ffn_dim = model.ffn_dim();
  shape.vocab = model.vocab_size();
  shape.tied = model.tied_embeddings();
  shape.pre_ln = model.norm() == config::ModelConfig::PRELN;
  return shape;
}

}  // namespace deepnet
