//! The convolutions of CLIP RN50's image tower, for benchmarks and throughput predictions.

use super::ConvShape;

/// One distinct convolution of the tower and how many times a forward pass runs it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TowerConv {
    /// Where it sits, e.g. `layer2.0.conv2`.
    pub name: &'static str,
    /// Its geometry.
    pub shape: ConvShape,
    /// Input height and width (square).
    pub size: usize,
    /// Occurrences per image.
    pub count: usize,
}

/// Every distinct convolution of open_clip's `ModifiedResNet` with layers `[3, 4, 6, 3]`,
/// width 64, at 224×224 (CLIP RN50), mirroring `ModifiedResNet.__init__` and `Bottleneck`:
/// three stem convs, then per stage a 1×1 reduce, a stride-1 3×3 at the stage's input size
/// (block 0) or output size (the rest), the 1×1 expand and the 1×1 downsample after pooling.
pub fn rn50_convs() -> Vec<TowerConv> {
    let conv = ConvShape::square;
    let mut v = vec![
        TowerConv {
            name: "stem.conv1",
            shape: conv(32, 3, 3, 2, 1),
            size: 224,
            count: 1,
        },
        TowerConv {
            name: "stem.conv2",
            shape: conv(32, 32, 3, 1, 1),
            size: 112,
            count: 1,
        },
        TowerConv {
            name: "stem.conv3",
            shape: conv(64, 32, 3, 1, 1),
            size: 112,
            count: 1,
        },
    ];
    const STAGES: [(&str, &str, usize, usize, usize); 4] = [
        ("layer1.0", "layer1.1-2", 64, 1, 3),
        ("layer2.0", "layer2.1-3", 128, 2, 4),
        ("layer3.0", "layer3.1-5", 256, 2, 6),
        ("layer4.0", "layer4.1-2", 512, 2, 3),
    ];
    let (mut size, mut inplanes) = (56, 64);
    for (first, rest, planes, stride, blocks) in STAGES {
        let out = size / stride;
        let expand = planes * 4;
        v.extend([
            TowerConv {
                name: first,
                shape: conv(planes, inplanes, 1, 1, 0),
                size,
                count: 1,
            },
            TowerConv {
                name: first,
                shape: conv(planes, planes, 3, 1, 1),
                size,
                count: 1,
            },
            TowerConv {
                name: first,
                shape: conv(expand, planes, 1, 1, 0),
                size: out,
                count: 1,
            },
            TowerConv {
                name: first,
                shape: conv(expand, inplanes, 1, 1, 0),
                size: out,
                count: 1,
            },
            TowerConv {
                name: rest,
                shape: conv(planes, expand, 1, 1, 0),
                size: out,
                count: blocks - 1,
            },
            TowerConv {
                name: rest,
                shape: conv(planes, planes, 3, 1, 1),
                size: out,
                count: blocks - 1,
            },
            TowerConv {
                name: rest,
                shape: conv(expand, planes, 1, 1, 0),
                size: out,
                count: blocks - 1,
            },
        ]);
        (size, inplanes) = (out, expand);
    }
    v
}
