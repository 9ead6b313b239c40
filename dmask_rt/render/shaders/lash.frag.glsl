#version 330 core
// Blended over the skin by alpha.
in vec4 v_rgba;
out vec4 f_color;

void main() {
    f_color = v_rgba;
}
