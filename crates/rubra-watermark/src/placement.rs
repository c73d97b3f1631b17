//! Where the overlay goes: gravity with offsets or exact coordinates, and clipping.

use crate::error::{Result, WatermarkError};
use std::str::FromStr;

/// Which edge or corner of the image the overlay is anchored to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Gravity {
    /// Top edge, centred horizontally.
    North,
    /// Bottom edge, centred horizontally.
    South,
    /// Right edge, centred vertically.
    East,
    /// Left edge, centred vertically.
    West,
    /// Top-right corner.
    NorthEast,
    /// Top-left corner.
    NorthWest,
    /// Bottom-right corner.
    SouthEast,
    /// Bottom-left corner.
    SouthWest,
    /// The centre of the image.
    Center,
}

impl Gravity {
    /// All nine gravities, for tests and documentation.
    pub const ALL: [Gravity; 9] = [
        Gravity::North,
        Gravity::South,
        Gravity::East,
        Gravity::West,
        Gravity::NorthEast,
        Gravity::NorthWest,
        Gravity::SouthEast,
        Gravity::SouthWest,
        Gravity::Center,
    ];
}

/// Error returned when a gravity name is not recognised.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "unknown gravity {0:?} (expected north, south, east, west, northeast, northwest, southeast, southwest or center)"
)]
pub struct ParseGravityError(pub String);

impl FromStr for Gravity {
    type Err = ParseGravityError;

    /// Accepts `north`, `ne`, `north_east`, `north-east`, `centre`, `center`, … (case-insensitive).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let norm: String = s
            .chars()
            .filter(|c| *c != '_' && *c != '-')
            .map(|c| c.to_ascii_lowercase())
            .collect();
        Ok(match norm.as_str() {
            "north" | "n" | "top" => Gravity::North,
            "south" | "s" | "bottom" => Gravity::South,
            "east" | "e" | "right" => Gravity::East,
            "west" | "w" | "left" => Gravity::West,
            "northeast" | "ne" => Gravity::NorthEast,
            "northwest" | "nw" => Gravity::NorthWest,
            "southeast" | "se" => Gravity::SouthEast,
            "southwest" | "sw" => Gravity::SouthWest,
            "center" | "centre" | "c" | "ce" => Gravity::Center,
            _ => return Err(ParseGravityError(s.to_owned())),
        })
    }
}

/// Where to put the overlay.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Placement {
    /// Anchor to an edge/corner. `dx`/`dy` move the overlay away from the named edge
    /// (inwards); along an axis the gravity centres on, positive values move it
    /// right/down.
    Gravity {
        /// The anchor.
        gravity: Gravity,
        /// Horizontal offset in pixels.
        dx: i64,
        /// Vertical offset in pixels.
        dy: i64,
    },
    /// Top-left corner of the overlay at exactly (`x`, `y`); may be negative.
    Exact {
        /// Left edge in image pixels.
        x: i64,
        /// Top edge in image pixels.
        y: i64,
    },
}

impl Placement {
    /// Shorthand for [`Placement::Gravity`].
    pub fn gravity(gravity: Gravity, dx: i64, dy: i64) -> Self {
        Placement::Gravity { gravity, dx, dy }
    }

    /// Top-left corner of an `ow`×`oh` overlay on an `iw`×`ih` image (unclipped).
    pub fn origin(&self, iw: u32, ih: u32, ow: u32, oh: u32) -> (i64, i64) {
        let (iw, ih, ow, oh) = (iw as i64, ih as i64, ow as i64, oh as i64);
        match *self {
            Placement::Exact { x, y } => (x, y),
            Placement::Gravity { gravity, dx, dy } => {
                use Gravity::*;
                let left = dx;
                let right = iw - ow - dx;
                let hcentre = (iw - ow) / 2 + dx;
                let top = dy;
                let bottom = ih - oh - dy;
                let vcentre = (ih - oh) / 2 + dy;
                match gravity {
                    North => (hcentre, top),
                    South => (hcentre, bottom),
                    East => (right, vcentre),
                    West => (left, vcentre),
                    NorthEast => (right, top),
                    NorthWest => (left, top),
                    SouthEast => (right, bottom),
                    SouthWest => (left, bottom),
                    Center => (hcentre, vcentre),
                }
            }
        }
    }
}

/// The part of the overlay that lands on the image, after clipping.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClippedRect {
    /// Left edge in image pixels.
    pub x: u32,
    /// Top edge in image pixels.
    pub y: u32,
    /// Width in pixels (> 0).
    pub width: u32,
    /// Height in pixels (> 0).
    pub height: u32,
    /// Column in the overlay that lands at `x`.
    pub overlay_x: u32,
    /// Row in the overlay that lands at `y`.
    pub overlay_y: u32,
}

/// Clip an overlay whose top-left corner is at `(ox, oy)`; `Err(OutsideImage)` if
/// nothing of it is inside the image.
pub fn clip(iw: u32, ih: u32, ox: i64, oy: i64, ow: u32, oh: u32) -> Result<ClippedRect> {
    let x0 = ox.max(0);
    let y0 = oy.max(0);
    let x1 = (ox + ow as i64).min(iw as i64);
    let y1 = (oy + oh as i64).min(ih as i64);
    if x1 <= x0 || y1 <= y0 {
        return Err(WatermarkError::OutsideImage);
    }
    Ok(ClippedRect {
        x: x0 as u32,
        y: y0 as u32,
        width: (x1 - x0) as u32,
        height: (y1 - y0) as u32,
        overlay_x: (x0 - ox) as u32,
        overlay_y: (y0 - oy) as u32,
    })
}
