import numpy as np
import pytest
import torch

from engine.gpt.decode import NumpyDecoder
from engine.gpt.model import GPT, GPTConfig, KVCache


@pytest.mark.parametrize("bias", [False, True])
def test_numpy_steps_equal_the_torch_model(bias):
    torch.manual_seed(0)
    model = GPT(GPTConfig(block_size=24, vocab_size=13, n_layer=3, n_head=4, n_embd=32, bias=bias)).eval()
    with torch.no_grad():  # give biases and gains non-trivial values, so that using them wrongly shows
        for name, parameter in model.named_parameters():
            if name.endswith("bias") or "ln" in name:
                parameter.add_(torch.randn_like(parameter) * 0.1)
    tokens = torch.randint(13, (24,), generator=torch.Generator().manual_seed(1)).tolist()
    decoder = NumpyDecoder(model)
    logits = [decoder.feed(tokens[:7])]  # a prompt in one go, then one token at a time
    logits += [decoder.feed([token]) for token in tokens[7:]]
    with torch.no_grad():
        cache = KVCache(model.config)
        reference = [model.forward_cached(torch.tensor([tokens[:7]]), cache)[0, -1]]
        reference += [model.forward_cached(torch.tensor([[token]]), cache)[0, -1] for token in tokens[7:]]
        full, _ = model(torch.tensor([tokens]), torch.tensor([tokens]))  # (1, 24, vocab) in one pass
    for step, (ours, theirs) in enumerate(zip(logits, reference)):
        np.testing.assert_allclose(ours, theirs.numpy(), rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(ours, full[0, 6 + step].numpy(), rtol=1e-4, atol=1e-5)


def test_running_past_the_block_is_refused():
    model = GPT(GPTConfig(block_size=4, vocab_size=5, n_layer=1, n_head=1, n_embd=8))
    decoder = NumpyDecoder(model)
    decoder.feed([1, 2, 3, 4])
    with pytest.raises(ValueError, match="block size is only 4"):
        decoder.feed([0])
