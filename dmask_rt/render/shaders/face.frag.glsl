#version 330 core
// One neutral skin tone: ambient + Lambert + a soft Blinn-Phong sheen.
uniform vec3 u_skin;
uniform vec3 u_light_dir;   // unit vector towards the key light, camera frame
uniform float u_ambient;
uniform float u_specular;
uniform float u_shininess;
in vec3 v_pos;
in vec3 v_normal;
out vec4 f_color;

void main() {
    vec3 n = normalize(v_normal);
    vec3 v = normalize(-v_pos);
    // The mesh winding is not known (and the projection flips it): light the side seen.
    if (dot(n, v) < 0.0) n = -n;
    float diffuse = max(dot(n, u_light_dir), 0.0);
    float spec = u_specular * pow(max(dot(n, normalize(u_light_dir + v)), 0.0), u_shininess);
    f_color = vec4(u_skin * (u_ambient + (1.0 - u_ambient) * diffuse) + spec, 1.0);
}
