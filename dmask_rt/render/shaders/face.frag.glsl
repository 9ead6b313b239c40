#version 330 core
// Face surface: the colour lit per vertex in face.vert.glsl. Alpha 0 leaves the
// openings' alpha mask (see renderer.py) unchanged under the back-face blend.
in vec3 v_color;
out vec4 f_color;

void main() {
    f_color = vec4(v_color, 0.0);
}
